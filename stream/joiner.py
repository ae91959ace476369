"""Delayed labels: join label-only events with the predictions the API logged, by id.

Bounded in age and in count, and driven by Kafka record timestamps (event time)
rather than the wall clock, so a trainer that replays the same records after a
crash makes the same joins and expiries: exactly-once learning survives.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Joined:
    """A served prediction and the label that arrived for it: ready to learn and to score."""

    id: str
    features: dict
    label: Any
    prediction: Any
    proba: dict | None
    version: int | None
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Unjoinable:
    """A label that cannot be joined: it goes to the dead-letter topic with ``reason``."""

    id: str
    label: Any
    reason: str
    raw: bytes


class Joiner:
    """Pending predictions and early labels, each in arrival order, each bounded.

    - a label whose prediction is pending joins at once;
    - a label that arrives first waits (up to ``max_age_ms`` of event time);
    - a prediction whose label does not come within ``max_age_ms`` expires (counted);
    - more than ``max_pending`` of either evicts the oldest (counted as expired).
    Ids already joined or expired are remembered (bounded), so a late or duplicate
    label gets a precise reason.
    """

    def __init__(self, max_age_ms: int, max_pending: int, state: dict | None = None) -> None:
        self.max_age_ms = max_age_ms
        self.max_pending = max_pending
        state = state or {}
        # id -> (ts_ms, features, prediction, proba, version)
        self.predictions: OrderedDict[str, tuple] = OrderedDict(state.get("predictions", ()))
        # id -> (ts_ms, label, raw)
        self.labels: OrderedDict[str, tuple] = OrderedDict(state.get("labels", ()))
        # id -> "joined" | "expired"
        self.settled: OrderedDict[str, str] = OrderedDict(state.get("settled", ()))
        self.counts: dict[str, int] = {"hit": 0, "expired": 0, "unknown": 0, "late": 0, "duplicate": 0}
        self.counts.update(state.get("counts", {}))
        self.watermark_ms: int = state.get("watermark_ms", 0)

    def state(self) -> dict:
        """Builtins only: it is pickled inside checkpoints that the API also reads."""
        return {
            "predictions": list(self.predictions.items()),
            "labels": list(self.labels.items()),
            "settled": list(self.settled.items()),
            "counts": dict(self.counts),
            "watermark_ms": self.watermark_ms,
        }

    def _settle(self, id_: str, how: str) -> None:
        self.settled[id_] = how
        if len(self.settled) > 2 * self.max_pending:
            self.settled.popitem(last=False)

    def add_prediction(
        self, id_: str, ts_ms: int, features: dict, prediction: Any, proba: dict | None, version: int | None
    ) -> Joined | None:
        """Record a served prediction; returns the join if its label was already waiting."""
        self.watermark_ms = max(self.watermark_ms, ts_ms)
        if id_ in self.settled or id_ in self.predictions:
            return None  # a replayed or duplicate log record: the first one counts
        waiting = self.labels.pop(id_, None)
        if waiting is not None:
            label_ts, label, _ = waiting
            self.counts["hit"] += 1
            self._settle(id_, "joined")
            return Joined(id_, features, label, prediction, proba, version, max(0, label_ts - ts_ms))
        self.predictions[id_] = (ts_ms, features, prediction, proba, version)
        if len(self.predictions) > self.max_pending:
            old_id, _ = self.predictions.popitem(last=False)
            self.counts["expired"] += 1
            self._settle(old_id, "expired")
        return None

    def add_label(self, id_: str, ts_ms: int, label: Any, raw: bytes) -> Joined | Unjoinable | None:
        """A label-only event: joined now, refused now, or waiting for its prediction (None)."""
        self.watermark_ms = max(self.watermark_ms, ts_ms)
        pending = self.predictions.pop(id_, None)
        if pending is not None:
            pred_ts, features, prediction, proba, version = pending
            if ts_ms - pred_ts > self.max_age_ms:
                self.counts["late"] += 1
                self._settle(id_, "expired")
                return Unjoinable(
                    id_,
                    label,
                    f"expired: label came {ts_ms - pred_ts} ms after the "
                    f"prediction, more than max_age {self.max_age_ms} ms",
                    raw,
                )
            self.counts["hit"] += 1
            self._settle(id_, "joined")
            return Joined(id_, features, label, prediction, proba, version, max(0, ts_ms - pred_ts))
        how = self.settled.get(id_)
        if how == "expired":
            self.counts["late"] += 1
            return Unjoinable(
                id_,
                label,
                f"expired: the prediction {id_} expired (max_age "
                f"{self.max_age_ms} ms or max_pending {self.max_pending})",
                raw,
            )
        if how == "joined" or id_ in self.labels:
            self.counts["duplicate"] += 1
            return Unjoinable(id_, label, f"duplicate: a label for {id_} was already received", raw)
        self.labels[id_] = (ts_ms, label, raw)
        if len(self.labels) > self.max_pending:
            old_id, (_, old_label, old_raw) = self.labels.popitem(last=False)
            self.counts["unknown"] += 1
            return Unjoinable(
                old_id,
                old_label,
                f"unknown id: {old_id} (max_pending {self.max_pending} early labels exceeded)",
                old_raw,
            )
        return None

    def expire(self) -> list[Unjoinable]:
        """Drop what is older than max_age behind the watermark; return the labels refused."""
        horizon = self.watermark_ms - self.max_age_ms
        while self.predictions:
            id_, entry = next(iter(self.predictions.items()))
            if entry[0] >= horizon:
                break
            self.predictions.popitem(last=False)
            self.counts["expired"] += 1
            self._settle(id_, "expired")
        refused = []
        while self.labels:
            id_, (ts_ms, label, raw) = next(iter(self.labels.items()))
            if ts_ms >= horizon:
                break
            self.labels.popitem(last=False)
            self.counts["unknown"] += 1
            refused.append(
                Unjoinable(
                    id_,
                    label,
                    f"unknown id: no prediction {id_} was logged within max_age {self.max_age_ms} ms",
                    raw,
                )
            )
        return refused
