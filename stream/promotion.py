"""What gets served: the promotion gate and the optional auto-rollback policy.

The trainer records every version; the gate decides whether the ``promoted``
pointer (what replicas serve when nothing is pinned) moves to it. A version
whose rolling main metric is worse than the promoted one's by more than the
model's ``promotion.tolerance`` is recorded as held instead.

Auto-rollback reacts to an *alert* raised after a promotion by pinning the last
version that proved healthy. Where alerts come from is a hook (``AlertSource``):
by default the error-rate monitor in alert (its state is in every checkpoint's
``monitors``), or a drop of the rolling main metric below the last healthy
version's by more than ``promotion.alert_drop``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis

from model_store.snapshot import SnapshotMeta
from model_store.specs import ModelSpec, PromotionPolicy
from model_store.store import CheckpointStore, StoreError

log = logging.getLogger(__name__)

AlertSource = Callable[[SnapshotMeta], str | None]
"""Called after each checkpoint with its metadata; returns why an alert is raised, or None."""


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str | None = None
    served_before: int | None = None  # the promoted version the candidate was compared with


def worse_by(candidate: float, baseline: float, bigger_is_better: bool) -> float:
    """How much worse ``candidate`` is than ``baseline`` (negative when it is better)."""
    return baseline - candidate if bigger_is_better else candidate - baseline


class PromotionGate:
    """Promote a version unless its rolling main metric is worse than the promoted one's by more
    than the tolerance. Without a tolerance, or without metrics to compare, every version passes."""

    def __init__(self, spec: ModelSpec, store: CheckpointStore) -> None:
        self.metric = spec.main_metric
        self.tolerance = spec.promotion.tolerance
        self.store = store
        # (promoted version, its rolling metric): a cache that a forked checkpoint writer reports
        # back, so the trainer's gate keeps it (stream/checkpoints.py)
        self.baseline: tuple[int, float | None] | None = None

    def decide(self, candidate: SnapshotMeta, bigger_is_better: bool) -> GateDecision:
        """Whether ``candidate`` (not yet published) should be served when nothing is pinned."""
        version = self.store.promoted(candidate.model)
        if version is None:
            version = self.store.latest_version(candidate.model)  # a store from before the gate
        if self.tolerance is None or version is None:
            return GateDecision(True, served_before=version)
        served_value = self._rolling(candidate.model, version)
        value = candidate.rolling_metrics.get(self.metric)
        if value is None or served_value is None:
            return GateDecision(True, served_before=version)
        gap = worse_by(value, served_value, bigger_is_better)
        if gap <= self.tolerance:
            return GateDecision(True, served_before=version)
        reason = (
            f"rolling {self.metric} {value:.4f} is worse than promoted v{version}'s {served_value:.4f} "
            f"by {gap:.4f}, more than the tolerance {self.tolerance}"
        )
        return GateDecision(False, reason, served_before=version)

    def _rolling(self, model: str, version: int) -> float | None:
        """The promoted version's rolling main metric (its metadata read once per version)."""
        if self.baseline is None or self.baseline[0] != version:
            try:
                meta = self.store.meta(model, version)
            except StoreError:
                return None
            self.baseline = (version, meta.rolling_metrics.get(self.metric))
        return self.baseline[1]


class AutoRollback:
    """After a promotion, an alert pins the last healthy version, recording why.

    A promoted version becomes *healthy* once a later checkpoint (which measured
    its predictions on new events) raised no alert. An alert while the promoted
    version is newer than the last healthy one pins the healthy one; an alert
    while the healthy one still serves pins nothing (the data changed, not the
    model). Nothing happens while any pin holds: an operator unpins.
    """

    def __init__(
        self,
        spec: ModelSpec,
        store: CheckpointStore,
        bigger_is_better: bool = True,
        alert_source: AlertSource | None = None,
    ) -> None:
        self.policy: PromotionPolicy = spec.promotion
        self.metric = spec.main_metric
        self.store = store
        self.bigger_is_better = bigger_is_better
        self.alert_source: AlertSource = alert_source or self.any_alert
        self.last_healthy: tuple[int, float | None] | None = None  # (version, its rolling main metric)

    def any_alert(self, meta: SnapshotMeta) -> str | None:
        """The default: the error-rate monitor in alert, else a drop of the main metric."""
        return error_rate_alert(meta) or self.metric_drop_alert(meta)

    def metric_drop_alert(self, meta: SnapshotMeta) -> str | None:
        """Built-in alert: the rolling main metric fell below the last healthy version's by more
        than ``promotion.alert_drop``."""
        if self.last_healthy is None:
            return None
        version, healthy_value = self.last_healthy
        value = meta.rolling_metrics.get(self.metric)
        if value is None or healthy_value is None:
            return None
        drop = worse_by(value, healthy_value, self.bigger_is_better)
        if drop <= self.policy.alert_drop:
            return None
        return (
            f"rolling {self.metric} {value:.4f} at v{meta.version} is {drop:.4f} worse than "
            f"{healthy_value:.4f} while v{version} served (alert_drop {self.policy.alert_drop})"
        )

    def after_checkpoint(self, meta: SnapshotMeta, served_before: int | None) -> int | None:
        """Called once ``meta`` is published; ``served_before`` is the version promoted before it.
        Returns the version pinned, if any."""
        try:
            alert = self.alert_source(meta)
        except Exception:  # a broken monitor must not stop the trainer after a published checkpoint
            log.exception("%s: alert source failed at v%d; no decision", meta.model, meta.version)
            return None
        if alert is None:
            if served_before is not None:  # it served through this checkpoint's window unalarmed
                self.last_healthy = (served_before, meta.rolling_metrics.get(self.metric))
            return None
        if self.last_healthy is None or served_before == self.last_healthy[0]:
            log.warning("%s: alert without a promotion since the last healthy version: %s", meta.model, alert)
            return None
        healthy = self.last_healthy[0]
        reason = f"auto-rollback: {alert}; v{served_before} was promoted after v{healthy}, the last healthy"
        try:
            if self.store.pinned(meta.model) is not None:
                return None
            self.store.pin(meta.model, healthy, reason=reason, by="auto-rollback")
        except (redis.RedisError, StoreError) as exc:
            log.error("%s: auto-rollback to v%d failed: %s", meta.model, healthy, exc)
            return None
        log.warning("%s: pinned v%d: %s", meta.model, healthy, reason)
        return healthy


def error_rate_alert(meta: SnapshotMeta) -> str | None:
    """The error-rate monitor (its state in the checkpoint's ``monitors``) is in alert."""
    error = (meta.monitors or {}).get("error_rate") or {}
    if error.get("state") != "alert":
        return None
    limit = error.get("alert")
    over = [
        f"{value:.3f} over the last {window} events"
        for window, value in (error.get("windows") or {}).items()
        if value is not None and limit is not None and value >= limit
    ]
    return f"error rate in alert at v{meta.version}: {', '.join(over) or 'cumulative'} (alert at {limit})"
