"""Delayed labels: join label-only events with the predictions the API logged, by id.

Bounded in age and in count, and driven by Kafka record timestamps (event time)
rather than the wall clock, so a trainer that replays the same records after a
crash makes the same joins and expiries: exactly-once learning survives.

A checkpoint does not copy the pending predictions (their features are most of a
trainer's state when many predictions never get a label): it holds their places in
the prediction log (stream.log_positions), and a trainer that resumes reads them
from the log again, as Kafka Streams restores a store from its changelog.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

from stream.log_positions import JOINED, PENDING, SETTLED_EXPIRED, SKIP, LogPositions

At = tuple[int, int] | None
"""Where a logged prediction is: (partition, offset) in the prediction log; None for one
carried whole in a checkpoint written before positions existed."""


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


class Logged(NamedTuple):
    """A served prediction as the API logged it (one record of the prediction log)."""

    id: str
    ts_ms: int
    features: dict
    prediction: Any
    proba: dict | None
    version: int | None


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
        # id -> (ts_ms, features, prediction, proba, version, at)
        self.predictions: OrderedDict[str, tuple] = OrderedDict(
            (id_, entry if len(entry) == 6 else (*entry, None)) for id_, entry in state.get("predictions", ())
        )
        # id -> (ts_ms, label, raw)
        self.labels: OrderedDict[str, tuple] = OrderedDict(state.get("labels", ()))
        # id -> ("joined" | "expired", at)
        self.settled: OrderedDict[str, tuple[str, At]] = OrderedDict(
            (id_, (how, None) if isinstance(how, str) else how) for id_, how in state.get("settled", ())
        )
        self.counts: dict[str, int] = {"hit": 0, "expired": 0, "unknown": 0, "late": 0, "duplicate": 0}
        self.counts.update(state.get("counts", {}))
        self.watermark_ms: int = state.get("watermark_ms", 0)
        self.unrestored = LogPositions.decode(state.get("positions", {}))
        """What to read again from the prediction log before the first label (``restore``)."""
        self.positions = LogPositions()
        """Each logged prediction's code, marked as it changes: what a checkpoint holds."""
        self._unplaced = bool(self.predictions or self.settled)
        """Whether any entry has no place in the log (a checkpoint from before positions, or
        added without one): only then are entries walked to carry those whole."""

    def state(self) -> dict:
        """Builtins only, and bounded: the pending predictions and settled ids by their place
        in the prediction log, and whole only the few known by no place (early labels, and
        entries of a checkpoint from before positions)."""
        positions = self.positions
        if self.unrestored:  # not read back yet: kept as they were
            positions = positions.copy()
            positions.merge(self.unrestored)
        return {
            "positions": positions.encode(),
            "predictions": [(i, e) for i, e in self.predictions.items() if e[5] is None]
            if self._unplaced
            else [],
            "labels": list(self.labels.items()),
            "settled": [(i, s) for i, s in self.settled.items() if s[1] is None] if self._unplaced else [],
            "counts": dict(self.counts),
            "watermark_ms": self.watermark_ms,
        }

    @property
    def restoring(self) -> bool:
        return bool(self.unrestored)

    def restore(self, at: tuple[int, int], logged: Logged) -> None:
        """A record of the prediction log read again after a restart: back as it was at the
        checkpoint (pending, or remembered as settled); counts and watermark untouched."""
        code, id_ = self.unrestored.take(at), logged.id
        if code == PENDING and id_ not in self.predictions:
            self.predictions[id_] = (*logged[1:], at)
            self.positions.mark(at, code)
        elif code in (JOINED, SETTLED_EXPIRED) and id_ not in self.settled:
            self.settled[id_] = ("joined" if code == JOINED else "expired", at)
            self.positions.mark(at, code)

    def finish_restore(self) -> int:
        """After reading the log again: order entries as they arrived, and count the pending
        predictions the log no longer holds (retention) as expired. Returns that count."""
        lost = self.unrestored.count(PENDING)
        self.counts["expired"] += lost
        self.unrestored = LogPositions()
        self.predictions = OrderedDict(sorted(self.predictions.items(), key=_arrival))
        self.settled = OrderedDict(sorted(self.settled.items(), key=lambda item: item[1][1] or (-1, -1)))
        return lost

    def _settle(self, id_: str, how: str, at: At) -> None:
        self.settled[id_] = (how, at)
        if at is not None:
            self.positions.mark(at, JOINED if how == "joined" else SETTLED_EXPIRED)
        else:
            self._unplaced = True
        if len(self.settled) > 2 * self.max_pending:
            _, (_, forgotten) = self.settled.popitem(last=False)
            if forgotten is not None:
                self.positions.mark(forgotten, SKIP)

    def add_prediction(
        self,
        id_: str,
        ts_ms: int,
        features: dict,
        prediction: Any,
        proba: dict | None,
        version: int | None,
        at: At = None,
    ) -> Joined | None:
        """Record a served prediction; returns the join if its label was already waiting."""
        self.watermark_ms = max(self.watermark_ms, ts_ms)
        if id_ in self.settled or id_ in self.predictions:
            return None  # a replayed or duplicate log record: the first one counts
        waiting = self.labels.pop(id_, None)
        if waiting is not None:
            label_ts, label, _ = waiting
            self.counts["hit"] += 1
            self._settle(id_, "joined", at)
            return Joined(id_, features, label, prediction, proba, version, max(0, label_ts - ts_ms))
        self.predictions[id_] = (ts_ms, features, prediction, proba, version, at)
        if at is not None:
            self.positions.mark(at, PENDING)
        else:
            self._unplaced = True
        if len(self.predictions) > self.max_pending:
            old_id, old = self.predictions.popitem(last=False)
            self.counts["expired"] += 1
            self._settle(old_id, "expired", old[5])
        return None

    def add_label(self, id_: str, ts_ms: int, label: Any, raw: bytes) -> Joined | Unjoinable | None:
        """A label-only event: joined now, refused now, or waiting for its prediction (None)."""
        self.watermark_ms = max(self.watermark_ms, ts_ms)
        pending = self.predictions.pop(id_, None)
        if pending is not None:
            pred_ts, features, prediction, proba, version, at = pending
            if ts_ms - pred_ts > self.max_age_ms:
                self._settle(id_, "expired", at)
                came = f"label came {ts_ms - pred_ts} ms after the prediction"
                return self._refuse(
                    "late", id_, label, raw, f"expired: {came}, more than max_age {self.max_age_ms} ms"
                )
            self.counts["hit"] += 1
            self._settle(id_, "joined", at)
            return Joined(id_, features, label, prediction, proba, version, max(0, ts_ms - pred_ts))
        how = self.settled.get(id_, (None, None))[0]
        if how == "expired":
            limits = f"max_age {self.max_age_ms} ms or max_pending {self.max_pending}"
            return self._refuse("late", id_, label, raw, f"expired: the prediction {id_} expired ({limits})")
        if how == "joined" or id_ in self.labels:
            return self._refuse(
                "duplicate", id_, label, raw, f"duplicate: a label for {id_} was already received"
            )
        self.labels[id_] = (ts_ms, label, raw)
        if len(self.labels) > self.max_pending:
            old_id, (_, old_label, old_raw) = self.labels.popitem(last=False)
            why = f"unknown id: {old_id} (max_pending {self.max_pending} early labels exceeded)"
            return self._refuse("unknown", old_id, old_label, old_raw, why)
        return None

    def advance(self, ts_ms: int) -> None:
        """Event time is at least ``ts_ms`` (a record of any topic was read); it never goes back."""
        if ts_ms > self.watermark_ms:
            self.watermark_ms = ts_ms

    def expire(self) -> list[Unjoinable]:
        """Drop what is older than max_age behind the watermark; return the labels refused."""
        horizon = self.watermark_ms - self.max_age_ms
        while self.predictions:
            id_, entry = next(iter(self.predictions.items()))
            if entry[0] >= horizon:
                break
            self.predictions.popitem(last=False)
            self.counts["expired"] += 1
            self._settle(id_, "expired", entry[5])
        refused = []
        while self.labels:
            id_, (ts_ms, label, raw) = next(iter(self.labels.items()))
            if ts_ms >= horizon:
                break
            self.labels.popitem(last=False)
            why = f"unknown id: no prediction {id_} was logged within max_age {self.max_age_ms} ms"
            refused.append(self._refuse("unknown", id_, label, raw, why))
        return refused

    def _refuse(self, outcome: str, id_: str, label: Any, raw: bytes, reason: str) -> Unjoinable:
        """Count a label that cannot be joined under ``outcome`` (late, duplicate, unknown)."""
        self.counts[outcome] += 1
        return Unjoinable(id_, label, reason, raw)


def _arrival(item: tuple[str, tuple]) -> tuple:
    """Event time, then place in the log: the order a trainer reading the log meets them."""
    entry = item[1]
    return (entry[0], entry[5] or (-1, -1))
