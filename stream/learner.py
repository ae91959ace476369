"""Test-then-train, one event at a time, with no Kafka in it.

``Learner.learn_one`` predicts, scores the prediction against the label
(cumulative and rolling-window prequential metrics), feeds the error to the
monitors (drift detector, error-rate windows), then learns: the metrics are
honest because the model never saw the event it is scored on.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from river import base, metrics, utils

from model_store.specs import ModelSpec
from stream.monitors import Monitors
from stream.pipeline import build_metric, build_pipeline

DEFAULT_SAMPLE = 2000


class Learner:
    """A River model and its prequential metrics; its whole state pickles as builtins + River."""

    def __init__(
        self,
        model: base.Estimator,
        cumulative: dict[str, metrics.base.Metric],
        rolling: dict[str, utils.Rolling],
        n_learned: int = 0,
        monitors: Monitors | None = None,
        sample_size: int = DEFAULT_SAMPLE,
    ) -> None:
        self.model = model
        self.cumulative = cumulative
        self.rolling = rolling
        self.n_learned = n_learned
        self.monitors = monitors
        # The last inputs learned, the reference of data drift; not checkpointed (it refills).
        self.sample: deque[dict] = deque(maxlen=sample_size)
        self._needs_proba = isinstance(model, base.Classifier) and any(
            not m.requires_labels for m in cumulative.values()
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Learner:
        cumulative = {name: build_metric(name, spec) for name in spec.metrics}
        rolling = {
            name: utils.Rolling(type(m), window_size=spec.rolling_window) for name, m in cumulative.items()
        }
        return cls(
            build_pipeline(spec), cumulative, rolling, 0, Monitors.from_spec(spec), spec.data_drift.sample
        )

    @classmethod
    def from_state(cls, state: dict[str, Any], spec: ModelSpec | None = None) -> Learner:
        """Continue a checkpoint; with ``spec``, its monitors too (or fresh ones if it has none)."""
        monitors = Monitors.from_state(state.get("monitors"), spec) if spec is not None else None
        sample = spec.data_drift.sample if spec is not None else DEFAULT_SAMPLE
        return cls(state["model"], state["metrics"], state["rolling"], state["n_learned"], monitors, sample)

    def state(self) -> dict[str, Any]:
        """What a checkpoint pickles. The API reads only ``state['model']``."""
        return {
            "model": self.model,
            "metrics": self.cumulative,
            "rolling": self.rolling,
            "n_learned": self.n_learned,
            "monitors": self.monitors.state() if self.monitors is not None else None,
        }

    def learn_one(self, x: dict, y: Any) -> Any:
        """Predict, learn, score; return the prediction made before learning.

        The metrics are updated after ``learn_one`` (with the prediction made before
        it, so they stay prequential) so that an event the model refuses (it raises)
        is not counted in them."""
        model = self.model
        if self._needs_proba:
            proba = model.predict_proba_one(x)
            y_pred = max(proba, key=proba.get) if proba else None
            scored = {
                name: (proba if not m.requires_labels else y_pred) for name, m in self.cumulative.items()
            }
        else:
            y_pred = model.predict_one(x)
            scored = None
        model.learn_one(x, y)
        self.sample.append(x)
        self.n_learned += 1
        if y_pred is not None:
            for name, metric in self.cumulative.items():
                value = y_pred if scored is None else scored[name]
                metric.update(y, value)
                self.rolling[name].update(y, value)
            if self.monitors is not None:
                self.monitors.update(y, y_pred, self.n_learned)
        return y_pred

    def metric_values(self) -> tuple[dict[str, float | None], dict[str, float | None]]:
        """(cumulative, rolling) current values by metric name."""
        return (
            {name: _value(m) for name, m in self.cumulative.items()},
            {name: _value(m) for name, m in self.rolling.items()},
        )


def _value(metric: Any) -> float | None:
    try:
        value = float(metric.get())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value == value and abs(value) != float("inf") else None
