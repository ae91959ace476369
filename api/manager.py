"""Which snapshot each model serves, swapped atomically (TensorFlow Serving's Manager).

Routes get an immutable ``Served`` and use it for the whole request, so a
request is answered entirely by one version even while a swap happens.
Loading (fetch, verify, unpickle) runs on the watcher thread, never on the
request path; the swap is one dict replacement. A replica fetches and unpickles a
version's serving artefact only, never its training state (model_store/snapshot.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from model_store.snapshot import IncompatibleSnapshot, SnapshotMeta, load_model
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, MemoryState, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Served:
    """One loaded, verified version of a model; never mutated after load."""

    name: str
    version: int
    meta: SnapshotMeta
    model: Any
    pinned: bool
    loaded_at: float
    load_seconds: float = 0.0  # fetch, verify and unpickle the artefact


class ModelManager:
    """Holds the served snapshot of every configured model."""

    def __init__(
        self, specs: dict[str, ModelSpec], store: CheckpointStore, signing_key: bytes | None
    ) -> None:
        self.specs = specs
        self.store = store
        self.signing_key = signing_key
        self._served: dict[str, Served] = {}
        self.problems: dict[str, str] = {name: "not loaded yet" for name in specs}
        self.store_reachable = False
        self.store_memory: dict[str, MemoryState] = {}  # per model, read at every poll
        self._refused: dict[str, int] = {}  # model -> version refused, not retried
        self.refused: dict[str, int] = {}  # per model, for Prometheus
        self._lock = threading.Lock()  # serialises loaders, never taken by requests

    def get(self, name: str) -> Served | None:
        return self._served.get(name)

    def served(self) -> dict[str, Served]:
        return self._served

    def refresh(self, name: str) -> Served | None:
        """Load whatever the store says this model should serve, if it is not served already."""
        with self._lock:
            try:
                pointer = self.store.served_pointer(name)
                self.store_reachable = True
                current = self._served.get(name)
                if pointer.version is None:
                    if current is None:
                        self.problems[name] = f"model '{name}' has no published version yet"
                    return current
                if current and current.version == pointer.version and current.pinned == pointer.pinned:
                    return current
                if self._refused.get(name) == pointer.version:
                    return current
                started = time.perf_counter()
                meta, blob = self.store.fetch(name, pointer.version)  # the artefact only
                model = load_model(meta, blob, self.signing_key)
                seconds = time.perf_counter() - started
            except IncompatibleSnapshot as exc:
                self._refused[name] = pointer.version
                self.refused[name] = self.refused.get(name, 0) + 1
                self.problems[name] = f"refused snapshot: {exc}"
                log.error("%s", self.problems[name])
                return self._served.get(name)
            except (redis.RedisError, StoreError) as exc:
                self.store_reachable = False
                if name not in self._served:
                    self.problems[name] = f"checkpoint store unreachable: {exc}"
                log.warning("cannot refresh %s: %s", name, exc)
                return self._served.get(name)
            served = Served(name, meta.version, meta, model, pointer.pinned, time.time(), seconds)
            self._served = {**self._served, name: served}
            self.problems.pop(name, None)
            log.info(
                "%s: serving v%d%s (%d bytes loaded in %.1f ms)",
                name,
                served.version,
                " (pinned)" if served.pinned else "",
                meta.blob_bytes,
                1000 * seconds,
            )
            return served

    def refresh_all(self) -> None:
        for name in self.specs:
            self.refresh(name)
        try:
            self.store_memory = {name: self.store.memory(name) for name in self.specs}
        except (redis.RedisError, StoreError) as exc:
            log.warning("cannot read Redis's memory: %s", exc)
