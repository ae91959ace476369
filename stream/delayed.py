"""The trainer's side of delayed labels: read the prediction log, join labels, learn
from the features that were served, and score what was served."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from model_store.event_schema import clean_features
from model_store.specs import ModelSpec
from stream.joiner import Joined, Joiner, Logged, Unjoinable
from stream.served_scores import ServedScores

log = logging.getLogger(__name__)


class DelayedLabels:
    """Joiner + served scores + offsets of ``<topic>.predictions``; all of it checkpointed."""

    def __init__(
        self,
        spec: ModelSpec,
        state: dict[str, Any] | None = None,
        prediction_offsets: dict[int, int] | None = None,
    ) -> None:
        self.spec = spec
        config = spec.delayed_labels
        state = state or {}
        self.joiner = Joiner(int(config.max_age_seconds * 1000), config.max_pending, state.get("joiner"))
        self.scores = ServedScores(spec, state.get("served"))
        self.offsets: dict[int, int] = dict(prediction_offsets or {})

    @property
    def topic(self) -> str:
        return self.spec.predictions_topic

    @property
    def pending(self) -> int:
        """Logged predictions waiting for their label."""
        return len(self.joiner.predictions)

    def state(self) -> dict[str, Any]:
        return {"joiner": self.joiner.state(), "served": self.scores.state()}

    def meta_fields(self) -> dict[str, Any]:
        return {"prediction_offsets": dict(self.offsets), "served": self.served_summary()}

    def served_summary(self) -> dict[str, Any]:
        """The scores of served predictions (model_store.monitor_reports.ServedState's shape)."""
        return self.scores.summary(self.joiner.counts)

    def on_predictions(self, partition: int, records: list) -> list[Joined]:
        """Logged predictions; returns the joins completed by labels that were waiting."""
        joined = []
        for record in records:
            self.offsets[partition] = record.offset + 1
            logged = self._read(record)
            if logged is None:
                continue
            done = self.joiner.add_prediction(*logged, at=(partition, record.offset))
            if done is not None:
                joined.append(done)
        return joined

    def to_restore(self) -> dict[int, tuple[int, int]]:
        """Partition -> [first, end) offsets of the prediction log to read again before
        learning: the pending window the checkpoint holds by position only."""
        return self.joiner.unrestored.ranges()

    def restore(self, partition: int, records: list) -> None:
        """Records of the prediction log read again after a restart (``to_restore``)."""
        for record in records:
            logged = self._read(record)
            if logged is not None:
                self.joiner.restore((partition, record.offset), logged)

    def finish_restore(self) -> None:
        lost = self.joiner.finish_restore()
        if lost:
            log.warning(
                "%s: %d pending predictions are no longer in the log (its retention): counted as expired",
                self.topic,
                lost,
            )

    def _read(self, record: Any) -> Logged | None:
        """What a record of the prediction log says; None if it is unreadable."""
        try:
            logged = orjson.loads(record.value)
            id_, features = logged["id"], logged["features"]
            if not isinstance(id_, str) or not isinstance(features, dict):
                raise TypeError("id must be a string and features an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("%s: unreadable prediction log record at %d: %s", self.topic, record.offset, exc)
            return None
        return Logged(
            id_,
            record.timestamp,
            clean_features(features),
            logged.get("prediction"),
            logged.get("proba"),
            logged.get("version"),
        )

    def on_label(self, id_: str, label: Any, record: Any) -> Joined | Unjoinable | None:
        return self.joiner.add_label(id_, record.timestamp, label, record.value)

    def advance(self, ts_ms: int) -> None:
        """Event time moves with every record the trainer reads, not only labels and predictions."""
        self.joiner.advance(ts_ms)

    def expire(self) -> list[Unjoinable]:
        return self.joiner.expire()

    def scored(self, joined: Joined) -> None:
        self.scores.update(joined)
