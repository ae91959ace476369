"""When to checkpoint, and how: the learner's state plus the offsets it includes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from model_store.feature_stats import FeatureStats, summarize
from model_store.promotion import AutoRollback, PromotionGate
from model_store.snapshot import SnapshotMeta, dump_state
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, ResetRequest
from stream.learner import Learner

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

    def __call__(self) -> bool:
        return self.events > 0 and (
            self.events >= self.every_events or self.clock() - self.since >= self.every_seconds
        )


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
        self.config_hash = spec.config_hash()
        self.gate = PromotionGate(spec, store)
        # Alerts: the error-rate monitor or a drop of the main metric (AutoRollback.any_alert).
        self.auto_rollback = AutoRollback(spec, store) if spec.promotion.auto_rollback else None
        self.feature_stats: dict[str, FeatureStats] = {}  # data-drift reference, carried over a restart
        self._stats_at = 0  # n_learned when this process last computed feature_stats

    def publish(
        self,
        learner: Learner,
        offsets: dict[int, int],
        reset: ResetRequest | None = None,
        extra_state: dict | None = None,
        **meta_fields: Any,
    ) -> SnapshotMeta:
        """Publish a version; the promotion gate decides whether it is served (a reset always is).

        ``extra_state`` joins the learner's in the blob; ``meta_fields`` go to the metadata."""
        blob = dump_state({**learner.state(), **(extra_state or {})})
        cumulative, rolling = learner.metric_values()
        self._update_feature_stats(learner)
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
        decision = self.gate.decide(meta, bigger_is_better)
        promote = decision.promote or reset is not None
        meta = self.store.publish(
            meta,
            blob,
            keep=self.spec.checkpoint.keep,
            signing_key=self.signing_key,
            promote=promote,
            hold_reason=decision.reason,
            applies_reset=reset,
        )
        self.parent = meta.version
        if not promote:
            log.warning("%s v%d held: %s", self.spec.name, meta.version, decision.reason)
        if self.auto_rollback is not None:
            self.auto_rollback.bigger_is_better = bigger_is_better
            self.auto_rollback.after_checkpoint(meta, decision.served_before)
        return meta

    def _update_feature_stats(self, learner: Learner) -> None:
        """Summarise the last events learned, once enough arrived since a (re)start, and
        again after a quarter of the sample is new (it costs milliseconds)."""
        sample, cfg = learner.sample, self.spec.data_drift
        quarter = cfg.sample // 4
        if self.feature_stats:
            due = len(sample) >= quarter and learner.n_learned - self._stats_at >= quarter
        else:
            due = len(sample) >= min(50, cfg.sample)
        if due:
            self.feature_stats = summarize(list(sample), cfg.bins, max_features=cfg.max_features)
            self._stats_at = learner.n_learned

    def try_publish(
        self,
        learner: Learner,
        offsets: dict[int, int],
        reset: ResetRequest | None = None,
        extra_state: dict | None = None,
        **meta_fields: Any,
    ) -> SnapshotMeta | None:
        """Publish, or log and return None when Redis is unreachable (retried later)."""
        try:
            return self.publish(learner, offsets, reset, extra_state, **meta_fields)
        except redis.RedisError as exc:
            log.error("checkpoint of %s failed, will retry: %s", self.spec.name, exc)
            return None
