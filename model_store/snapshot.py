"""Snapshot metadata, the runtime a snapshot needs, and its signature.

A snapshot is two pickles: the serving artefact (``{"model": pipeline}``, all a
replica loads) and the training state (metrics, monitors, delayed-label join
state, served scores: only the trainer loads it). Loading a pickle runs code: the
metadata records the exact runtime that wrote them and a digest of each part, and
an HMAC over the metadata lets a reader refuse anything the trainer did not write.
A replica verifies and unpickles the artefact only, so training state never runs
in serving.

Snapshots written before the split are one blob holding the whole state, and their
metadata has no training digest; both sides still load them (``is_split``).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
import platform
import sys
from datetime import UTC, datetime
from typing import Any, NamedTuple

import river
from pydantic import BaseModel, ConfigDict, Field

from model_store.errors import ModelStoreError
from model_store.event_schema import Task
from model_store.feature_stats import FeatureStats

# Fields added after snapshots were first signed: left out of the signed payload while
# they hold their default, so snapshots written before they existed still verify.
_ADDED_LATER = (
    "feature_stats",
    "monitors",
    "rebuilt_from",
    "training_sha256",
    "training_bytes",
    "challengers",
    "promotion",
)

# The serving artefact: what ``predict`` needs and nothing else.
ARTEFACT_KEYS = ("model",)


class Runtime(NamedTuple):
    """The Python (major.minor) and River versions a snapshot needs, or a process runs."""

    python: str
    river: str

    def __str__(self) -> str:
        return f"Python {self.python} / River {self.river}"


class IncompatibleSnapshot(ModelStoreError, RuntimeError):
    """The snapshot was written by another Python or River, or its signature is wrong."""


class RuntimeMismatch(IncompatibleSnapshot):
    """The snapshot was written by another Python or River than this process runs."""

    def __init__(self, model: str, version: int, written: Runtime, running: Runtime) -> None:
        self.model, self.version, self.written, self.running = model, version, written, running
        super().__init__(
            f"{model} v{version} was written by {written}; this process runs {running}. "
            "Run both sides from the same constraints.txt."
        )


def python_version() -> str:
    """major.minor: the granularity at which pickles of River objects stay compatible."""
    return ".".join(platform.python_version_tuple()[:2])


def running_runtime() -> Runtime:
    """What this process would write into a snapshot, and can load."""
    return Runtime(python_version(), river.__version__)


class RebuiltFrom(BaseModel):
    """Where a rebuilt lineage came from (``streamlearn rebuild``): the version it replaces and
    the events it re-learned."""

    version: int | None = Field(description="newest version when the rebuild started; None if none")
    python_version: str | None = Field(default=None, description="Python that version was written by")
    river_version: str | None = Field(default=None, description="River that version was written by")
    from_offsets: dict[int, int] = Field(description="partition -> first offset re-learned")
    to_offsets: dict[int, int] = Field(description="partition -> high watermark seen at the start")


class SnapshotMeta(BaseModel):
    """Everything known about one checkpoint, stored as JSON beside its blob."""

    model_config = ConfigDict(extra="ignore")

    model: str
    version: int = 0
    parent: int | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    task: Task
    topic: str
    n_learned: int = Field(ge=0)
    offsets: dict[int, int] = Field(
        default_factory=dict, description="partition -> next offset to read; events before it are learned"
    )
    prediction_offsets: dict[int, int] = Field(
        default_factory=dict, description="partition of <topic>.predictions -> next offset (delayed labels)"
    )
    served: dict[str, Any] = Field(
        default_factory=dict, description="scores of served predictions whose labels arrived (delayed labels)"
    )
    metrics: dict[str, float | None] = Field(default_factory=dict)
    rolling_metrics: dict[str, float | None] = Field(default_factory=dict)
    python_version: str = Field(default_factory=python_version)
    river_version: str = river.__version__
    config_hash: str = ""
    blob_sha256: str = Field(default="", description="digest of the serving artefact (or of the one blob)")
    blob_bytes: int = Field(default=0, description="size of the serving artefact (or of the one blob)")
    training_sha256: str = Field(default="", description="digest of the training state; empty: one-blob form")
    training_bytes: int = Field(default=0, description="size of the training state")
    signature: str | None = None
    feature_stats: dict[str, FeatureStats] = Field(
        default_factory=dict,
        description="Distribution of each feature in the last events learned, the data-drift reference",
    )
    monitors: dict[str, Any] = Field(
        default_factory=dict, description="Drift detections and error-rate windows at checkpoint time"
    )
    rebuilt_from: RebuiltFrom | None = Field(
        default=None, description="Set on the first version of a lineage `streamlearn rebuild` made"
    )
    promotion: dict[str, Any] | None = Field(
        default=None,
        description="Set on the version that made a challenger the champion: {id, challenger, former}",
    )
    challengers: dict[str, Any] = Field(
        default_factory=dict,
        description="Each challenger's leaderboard row at this version: metrics, rolling metrics, "
        "events learned, since when, error if disabled, paired test against the champion",
    )

    @property
    def is_split(self) -> bool:
        """Written as two parts (artefact and training state), not as one blob."""
        return bool(self.training_sha256)

    @property
    def total_bytes(self) -> int:
        """What the version holds in Redis, both parts."""
        return self.blob_bytes + self.training_bytes

    @property
    def runtime(self) -> Runtime:
        return Runtime(self.python_version, self.river_version)

    def signing_payload(self) -> bytes:
        """The metadata as signed: everything but the signature itself."""
        unset = {name for name in _ADDED_LATER if not getattr(self, name)}
        return self.model_dump_json(exclude={"signature", *unset}).encode()


def sign(meta: SnapshotMeta, blob: bytes, key: bytes | None, training: bytes | None = None) -> SnapshotMeta:
    """Record each part's digest and size and, when a key is set, an HMAC-SHA256 over the
    metadata (so over both digests). ``blob`` is the serving artefact; without ``training``
    the snapshot is in the one-blob form."""
    meta = meta.model_copy(
        update={
            "blob_sha256": hashlib.sha256(blob).hexdigest(),
            "blob_bytes": len(blob),
            "training_sha256": hashlib.sha256(training).hexdigest() if training is not None else "",
            "training_bytes": len(training) if training is not None else 0,
            "signature": None,
        }
    )
    if key:
        mac = hmac.new(key, meta.signing_payload(), hashlib.sha256).hexdigest()
        meta = meta.model_copy(update={"signature": mac})
    return meta


def verify(meta: SnapshotMeta, blob: bytes, key: bytes | None, training: bytes | None = None) -> None:
    """Raise IncompatibleSnapshot unless the artefact (and ``training``, when given) match
    their digests, the metadata is signed and the runtime is this one."""
    if hashlib.sha256(blob).hexdigest() != meta.blob_sha256:
        raise IncompatibleSnapshot(f"{meta.model} v{meta.version}: blob digest does not match its metadata")
    if training is not None and hashlib.sha256(training).hexdigest() != meta.training_sha256:
        raise IncompatibleSnapshot(
            f"{meta.model} v{meta.version}: training state digest does not match its metadata"
        )
    if key:
        if not meta.signature:
            raise IncompatibleSnapshot(f"{meta.model} v{meta.version}: snapshot is not signed")
        expected = hmac.new(key, meta.signing_payload(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, meta.signature):
            raise IncompatibleSnapshot(f"{meta.model} v{meta.version}: signature does not match")
    if meta.runtime != running_runtime():
        raise RuntimeMismatch(meta.model, meta.version, meta.runtime, running_runtime())


def dump_state(state: dict[str, Any]) -> bytes:
    """Pickle a state dict (the one-blob form, or one part). It must hold only River
    objects and builtins, so that a serving install (no ``stream`` package) can unpickle it."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def dump_parts(state: dict[str, Any]) -> tuple[bytes, bytes]:
    """A checkpoint's state as (serving artefact, training state), each pickled apart."""
    artefact = {k: v for k, v in state.items() if k in ARTEFACT_KEYS}
    training = {k: v for k, v in state.items() if k not in ARTEFACT_KEYS}
    return dump_state(artefact), dump_state(training)


def load_model(meta: SnapshotMeta, blob: bytes, key: bytes | None) -> Any:
    """The serving side's load: verify and unpickle the artefact, return the pipeline. The
    training state is neither needed nor read (a one-blob snapshot is unpickled whole)."""
    return _unpickle(meta, blob, key)["model"]


def load_state(
    meta: SnapshotMeta, blob: bytes, key: bytes | None, training: bytes | None = None
) -> dict[str, Any]:
    """The trainer's load: verify both parts, unpickle them, return the whole state, its
    strings interned (``_loads_interned``)."""
    if not meta.is_split:
        return _unpickle(meta, blob, key, interned=True)
    if training is None:
        raise IncompatibleSnapshot(f"{meta.model} v{meta.version}: the training state was not read")
    verify(meta, blob, key, training)
    artefact = _unpickle(meta, blob, key, interned=True)  # first: the champion's names win
    state = _loads_interned(training)
    if not isinstance(state, dict):
        raise IncompatibleSnapshot(f"{meta.model} v{meta.version}: training state is not a dict")
    return {**state, **artefact}


def _unpickle(meta: SnapshotMeta, blob: bytes, key: bytes | None, interned: bool = False) -> dict[str, Any]:
    verify(meta, blob, key)
    state = _loads_interned(blob) if interned else pickle.loads(blob)  # noqa: S301 - verified above
    if not isinstance(state, dict) or "model" not in state:
        raise IncompatibleSnapshot(f"{meta.model} v{meta.version}: blob holds no model")
    return state


def _loads_interned(data: bytes) -> Any:
    """Unpickle (verified data), then intern every string it holds, in place where no equal
    string is interned yet: a restored model's feature names become the objects the trainer's
    events are handed over with (stream/handover.py), so River's lookups match them by
    identity instead of comparing characters, as they do in a model learned from the start."""
    unpickler = pickle.Unpickler(io.BytesIO(data))
    state = unpickler.load()  # noqa: S301 - verified by the caller
    for obj in unpickler.memo.copy().values():  # pickle memoizes every string it writes
        if type(obj) is str:
            sys.intern(obj)
    return state
