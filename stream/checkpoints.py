"""When to checkpoint, and how: the learner's state plus the offsets it includes.

A checkpoint is made in three steps, so the expensive one can run in a forked child
(stream/forked_child.py) while the trainer learns on:

1. ``prepare`` (in the trainer): everything cheap or stateful — metric values, the
   monitors' summary, whether feature statistics are due, the metadata with a copy of
   the offsets, and the state dict to pickle, which holds the *live* objects: it must be
   pickled before the learner learns again, which a fork guarantees by copying memory at
   that instant;
2. ``write`` (in the child, or inline): summarise the features when due (milliseconds of
   pure computation on the same sample), pickle the serving artefact and the training
   state apart, ask the promotion gate, sign and publish both in one Redis transaction;
   it returns a ``Published`` report;
3. ``finish`` (in the trainer): the parent pointer, the gate's cache, the feature
   statistics, the held-version warning, and the auto-rollback policy: state that must
   live in the trainer, which a child's changes would never reach.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import BaseModel

from model_store.feature_stats import FeatureStats, summarize
from model_store.leases import Fenced
from model_store.snapshot import SnapshotMeta, dump_parts
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, ResetRequest, StoreFull
from stream.learner import Learner
from stream.promotion import AutoRollback, PromotionGate

log = logging.getLogger(__name__)


class CheckpointDue:
    """Every N events or T seconds since the last checkpoint, whichever comes first."""

    def __init__(self, every_events: int, every_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.events = 0
        self.since = self.clock()

    def count(self, n: int = 1) -> None:
        """``n`` more events learned since the last checkpoint."""
        self.events += n

    def left(self) -> int:
        """Events until a checkpoint is due by count (at least 1): where a run of learning ends."""
        return max(self.every_events - self.events, 1)

    def by_count(self, taken: int = 0) -> bool:
        """Due by count, counting from ``taken`` (the count when the checkpoint being written was
        taken) rather than from the last one published."""
        return self.events - taken >= self.every_events

    def published(self, events: int, since: float) -> None:
        """A checkpoint including the first ``events`` counted events, taken at ``since``, was
        published; events counted after it was taken (while a child wrote it) still count."""
        self.events = max(self.events - events, 0)
        self.since = since

    def __call__(self) -> bool:
        return self.events > 0 and (
            self.events >= self.every_events or self.clock() - self.since >= self.every_seconds
        )


@dataclass
class Prepared:
    """A checkpoint assembled in the trainer, not written yet."""

    state: dict[str, Any]  # live objects: pickle before learning goes on (or in a child forked now)
    meta: SnapshotMeta  # version, digest and signature are set when it is written
    bigger_is_better: bool
    reset: ResetRequest | None = None
    sample: Sequence[dict] | None = None  # live too: summarise it into meta.feature_stats


class Published(BaseModel):
    """What writing a checkpoint did; a forked writer sends it to the trainer as JSON."""

    meta: SnapshotMeta
    promoted: bool
    hold_reason: str | None = None
    served_before: int | None = None  # the promoted version the gate compared with
    baseline: tuple[int, float | None] | None = None  # the gate's cache after deciding
    fresh_stats: bool = False  # meta.feature_stats were summarised for this version
    seconds: float = 0.0  # pickle, gate, sign, publish
    retained_bytes: int = 0  # every retained version of the model, both parts, after this one


class WriteReport(BaseModel):
    """A forked writer's report: what it published, or why Redis refused (retried later)."""

    published: Published | None = None
    error: str | None = None
    fenced: str | None = None  # refused: another trainer holds the model now
    store_full: bool = False  # ``error`` is Redis out of memory with nothing retention could free


class Checkpointer:
    """Publishes the learner's state with the offsets it includes.

    Order: the model state and its offsets are written together in one Redis
    transaction, so a restart seeks exactly past what the loaded model learned.
    """

    def __init__(self, spec: ModelSpec, store: CheckpointStore, signing_key: bytes | None) -> None:
        self.spec = spec
        self.store = store
        self.signing_key = signing_key
        self.parent: int | None = None
        self.epoch: int | None = None  # this trainer's lease: every write is fenced by it
        self.config_hash = spec.config_hash()
        self.gate = PromotionGate(spec, store)
        # Alerts: the error-rate monitor or a drop of the main metric (AutoRollback.any_alert).
        self.auto_rollback = AutoRollback(spec, store) if spec.promotion.auto_rollback else None
        self.feature_stats: dict[str, FeatureStats] = {}  # data-drift reference, carried over a restart
        self._stats_at = 0  # n_learned of the version whose feature_stats this process computed last

    def resume_from(self, meta: SnapshotMeta) -> None:
        """The trainer restored ``meta``'s version: it is the next one's parent, and its feature
        statistics stay the data-drift reference until new ones are due."""
        self.parent = meta.version
        self.feature_stats = meta.feature_stats

    def branch_from(self, version: int) -> None:
        """The next version continues ``version``'s state (a reset), so it is its parent."""
        self.parent = version

    def fence_with(self, epoch: int | None) -> None:
        """Every write from now on is refused unless ``epoch`` still holds the model's lease."""
        self.epoch = epoch

    def prepare(
        self,
        learner: Learner,
        offsets: dict[int, int],
        reset: ResetRequest | None = None,
        extra_state: dict | None = None,
        **meta_fields: Any,
    ) -> Prepared:
        """Step 1, in the trainer. ``extra_state`` joins the learner's in the blob;
        ``meta_fields`` go to the metadata."""
        cumulative, rolling = learner.metric_values()
        monitors = learner.monitors.summary(learner.n_learned) if learner.monitors is not None else None
        meta = SnapshotMeta(
            model=self.spec.name,
            parent=self.parent,
            task=self.spec.task,
            topic=self.spec.topic,
            n_learned=learner.n_learned,
            offsets=dict(offsets),
            metrics=cumulative,
            rolling_metrics=rolling,
            config_hash=self.config_hash,
            feature_stats=self.feature_stats,
            monitors=monitors.model_dump(mode="json") if monitors is not None else {},
            **meta_fields,
        )
        bigger_is_better = bool(getattr(learner.cumulative[self.spec.main_metric], "bigger_is_better", True))
        sample = learner.sample if self._feature_stats_due(learner) else None
        return Prepared({**learner.state(), **(extra_state or {})}, meta, bigger_is_better, reset, sample)

    def write(self, prepared: Prepared) -> Published:
        """Step 2, in a forked child or inline: summarise the features when due, pickle, ask
        the gate (a reset is always served), sign and publish. Touches only ``prepared``, the
        gate and the store."""
        started = time.perf_counter()
        meta = prepared.meta
        if prepared.sample is not None:
            cfg = self.spec.data_drift
            stats = summarize(list(prepared.sample), cfg.bins, max_features=cfg.max_features)
            meta = meta.model_copy(update={"feature_stats": stats})
        artefact, training = dump_parts(prepared.state)
        decision = self.gate.decide(meta, prepared.bigger_is_better)
        # a reset or a promotion is the operator's decision: always served
        forced = meta.promotion is not None and meta.promotion.get("by") != "auto"
        promote = decision.promote or prepared.reset is not None or forced
        meta = self.store.publish(
            meta,
            artefact,
            keep=self.spec.checkpoint.keep,
            signing_key=self.signing_key,
            promote=promote,
            hold_reason=decision.reason,
            applies_reset=prepared.reset,
            epoch=self.epoch,
            training=training,
            max_bytes=self.spec.checkpoint.max_bytes,
        )
        return Published(
            meta=meta,
            promoted=promote,
            hold_reason=None if promote else decision.reason,
            served_before=decision.served_before,
            baseline=self.gate.baseline,
            fresh_stats=prepared.sample is not None,
            seconds=time.perf_counter() - started,
            retained_bytes=self.store.retained_bytes(self.spec.name),
        )

    def write_report(self, prepared: Prepared) -> bytes:
        """``write`` as a forked child's work: a ``WriteReport`` as JSON. Other errors than
        Redis's are raised (the child reports them as a crash)."""
        try:
            report = WriteReport(published=self.write(prepared))
        except redis.RedisError as exc:
            report = WriteReport(error=f"{type(exc).__name__}: {exc}")
        except Fenced as exc:
            report = WriteReport(fenced=str(exc))
        except StoreFull as exc:
            report = WriteReport(error=str(exc), store_full=True)
        return report.model_dump_json().encode()

    def finish(self, published: Published, bigger_is_better: bool) -> SnapshotMeta:
        """Step 3, in the trainer, once the version is published."""
        meta = published.meta
        self.parent = meta.version
        self.gate.baseline = published.baseline
        if published.fresh_stats:
            self.feature_stats, self._stats_at = meta.feature_stats, meta.n_learned
        if not published.promoted:
            log.warning("%s v%d held: %s", self.spec.name, meta.version, published.hold_reason)
        if self.auto_rollback is not None:
            self.auto_rollback.bigger_is_better = bigger_is_better
            self.auto_rollback.after_checkpoint(meta, published.served_before)
        return meta

    def _feature_stats_due(self, learner: Learner) -> bool:
        """Summarise the last events learned once enough arrived since a (re)start, and again
        after a quarter of the sample is new (otherwise a version carries the last summary)."""
        sample, cfg = learner.sample, self.spec.data_drift
        quarter = cfg.sample // 4
        if self.feature_stats:
            return len(sample) >= quarter and learner.n_learned - self._stats_at >= quarter
        return len(sample) >= min(50, cfg.sample)
