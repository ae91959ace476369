"""What follows a prediction, the same on the route and on the fast path (api/fast_predict.py):
the id, the prediction log record when the model's YAML asks for it, the monitor's observation,
and the orjson body."""

from __future__ import annotations

import time
from typing import Any

import orjson

from api.ids import IdSource
from api.manager import Served
from api.prediction_log import PredictionLog
from api.serving_monitor import ServingMonitor
from model_store.specs import ModelSpec

JSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class Responder:
    """Logs, observes and serialises answered predictions of every configured model."""

    def __init__(
        self, specs: dict[str, ModelSpec], prediction_log: PredictionLog | None, monitor: ServingMonitor
    ) -> None:
        self.prediction_log = prediction_log
        self.monitor = monitor
        self.new_id = IdSource().next_id  # the id of a prediction whose request brought none
        # the predictions topic of every model whose YAML wants its predictions logged
        self._log_topics = (
            {n: s.predictions_topic for n, s in specs.items() if s.delayed_labels.log_predictions}
            if prediction_log is not None
            else {}
        )

    def log(self, served: Served, id_: str, features: dict, result: dict[str, Any]) -> None:
        """Hand the served prediction to the log (never blocks) when the model's YAML wants it."""
        topic = self._log_topics.get(served.name)
        if topic is None:
            return
        record = {
            "id": id_,
            "model": served.name,
            "version": served.version,
            "features": features,
            "ts": time.time(),
            **result,
        }
        self.prediction_log.submit(topic, id_, record)

    def answer(
        self, served: Served, features: dict, id_: str | None, result: dict[str, Any], started: float
    ) -> bytes:
        """The body of one answered prediction; logged and observed (``started``: when the
        request's body had been parsed, on ``time.perf_counter``)."""
        id_ = id_ or self.new_id()
        self.log(served, id_, features, result)
        self.monitor.observe(served, (features,), time.perf_counter() - started)
        return orjson.dumps(
            {"model": served.name, "version": served.version, "id": id_, **result}, option=JSON_OPTS
        )
