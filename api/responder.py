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

    def log(
        self, served: Served, id_: str, features: dict, result: dict[str, Any], answer: bytes | None = None
    ) -> None:
        """Hand the served prediction to the log (never blocks) when the model's YAML wants it;
        ``answer``: its body, when it was serialised already."""
        topic = self._log_topics.get(served.name)
        if topic is None:
            return
        if answer is None:
            answer = self._body(served, id_, result)
        self.prediction_log.submit_prediction(topic, id_, answer, features)

    def answer(
        self, served: Served, features: dict, id_: str | None, result: dict[str, Any], started: float
    ) -> bytes:
        """The body of one answered prediction; logged and observed (``started``: when the
        request's body had been parsed, on ``time.perf_counter``)."""
        id_ = id_ or self.new_id()
        body = self._body(served, id_, result)
        self.log(served, id_, features, result, body)
        self.monitor.observe(served, (features,), time.perf_counter() - started)
        return body

    @staticmethod
    def _body(served: Served, id_: str, result: dict[str, Any]) -> bytes:
        return orjson.dumps(
            {"model": served.name, "version": served.version, "id": id_, **result}, option=JSON_OPTS
        )
