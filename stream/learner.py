"""Test-then-train, one event at a time, with no Kafka in it.

``Learner.learn_one`` predicts, scores the prediction against the label (the
cumulative prequential metrics), then learns: the metrics are honest because the
model never saw the event it is scored on.

Only what the plain River loop does happens per event. The rest of the scoring (the
rolling-window metrics, the drift detector, the error-rate windows) is queued and
applied in one pass when anything reads it, or every ``SETTLE_EVERY`` events: the
same results in the same order, for a fraction of the per-event cost (SPEC section 6
compares the trainer with the plain loop).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from river import base, metrics, utils

from model_store.specs import ModelSpec
from stream.monitors import Monitors, Scored
from stream.pipeline import build_metric, build_pipeline

DEFAULT_SAMPLE = 2000
SETTLE_EVERY = 4096
"""Queued scores applied at the latest after this many events (bounds memory and delay)."""


class WindowedMetric:
    """A metric over the last ``size`` scored events, computed when read.

    River's ``utils.Rolling`` updates and reverts its metric at every event (about 2 us
    a metric). The trainer reads a rolling value about twice a second, so keeping the
    (y_true, y_pred) pairs and replaying them into a fresh metric when read is cheaper
    at any rate that matters, and exact (nothing is reverted)."""

    def __init__(self, cls: type[metrics.base.Metric], size: int, pairs: Iterable[tuple] = ()) -> None:
        self.cls = cls
        self.size = size
        self.pairs: deque[tuple[Any, Any]] = deque(pairs, maxlen=size)
        self._metric: metrics.base.Metric | None = None

    def extend(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        self.pairs.extend(pairs)
        self._metric = None

    def get(self) -> Any:
        if self._metric is None:
            metric = self.cls()
            update = metric.update
            for y, y_pred in self.pairs:
                update(y, y_pred)
            self._metric = metric
        return self._metric.get()

    def state(self) -> dict[str, Any]:
        """Builtins and a River class: the API unpickles checkpoints without this package."""
        return {"metric": self.cls, "size": self.size, "pairs": list(self.pairs)}

    @classmethod
    def from_state(cls, state: Any) -> WindowedMetric:
        if isinstance(state, utils.Rolling):  # written before WindowedMetric: same pairs inside
            return cls(type(state.obj), state.window_size, (args for args, _ in state.window))
        return cls(state["metric"], state["size"], state["pairs"])


class Learner:
    """A River model and its prequential metrics; its state pickles as builtins + River."""

    def __init__(
        self,
        model: base.Estimator,
        cumulative: dict[str, metrics.base.Metric],
        rolling: dict[str, WindowedMetric],
        n_learned: int = 0,
        monitors: Monitors | None = None,
        sample_size: int = DEFAULT_SAMPLE,
    ) -> None:
        self.model = model
        self.cumulative = cumulative
        self.rolling = rolling
        self.n_learned = n_learned
        self._monitors = monitors
        # The last inputs learned, the reference of data drift; not checkpointed (it refills).
        self.sample: deque[dict] = deque(maxlen=sample_size)
        self._needs_proba = isinstance(model, base.Classifier) and any(
            not m.requires_labels for m in cumulative.values()
        )
        self._metrics = list(cumulative.values())
        self._queued: list[Scored] = []

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Learner:
        cumulative = {name: build_metric(name, spec) for name in spec.metrics}
        rolling = {name: WindowedMetric(type(m), spec.rolling_window) for name, m in cumulative.items()}
        return cls(
            build_pipeline(spec), cumulative, rolling, 0, Monitors.from_spec(spec), spec.data_drift.sample
        )

    @classmethod
    def from_state(cls, state: dict[str, Any], spec: ModelSpec | None = None) -> Learner:
        """Continue a checkpoint; with ``spec``, its monitors too (or fresh ones if it has none)."""
        monitors = Monitors.from_state(state.get("monitors"), spec) if spec is not None else None
        sample = spec.data_drift.sample if spec is not None else DEFAULT_SAMPLE
        rolling = {name: WindowedMetric.from_state(s) for name, s in state["rolling"].items()}
        return cls(state["model"], state["metrics"], rolling, state["n_learned"], monitors, sample)

    @property
    def monitors(self) -> Monitors | None:
        """The drift detector and error-rate windows, up to date with every event learned."""
        self.settle()
        return self._monitors

    def state(self) -> dict[str, Any]:
        """What a checkpoint pickles. The API reads only ``state['model']``."""
        monitors = self.monitors
        return {
            "model": self.model,
            "metrics": self.cumulative,
            "rolling": {name: window.state() for name, window in self.rolling.items()},
            "n_learned": self.n_learned,
            "monitors": monitors.state() if monitors is not None else None,
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
        self.n_learned = n = self.n_learned + 1
        if y_pred is not None:
            if scored is None:
                for metric in self._metrics:
                    metric.update(y, y_pred)
            else:
                for name, metric in self.cumulative.items():
                    metric.update(y, scored[name])
            queued = self._queued
            queued.append((y, y_pred, scored, n))
            if len(queued) >= SETTLE_EVERY:
                self.settle()
        return y_pred

    def settle(self) -> None:
        """Apply the queued scores to the rolling metrics and the monitors, in order."""
        queued = self._queued
        if not queued:
            return
        self._queued = []
        for name, window in self.rolling.items():
            window.extend((y, p if s is None else s[name]) for y, p, s, _ in queued)
        if self._monitors is not None:
            self._monitors.update_many(queued)

    def metric_values(self) -> tuple[dict[str, float | None], dict[str, float | None]]:
        """(cumulative, rolling) current values by metric name."""
        self.settle()
        return (
            {name: _value(m.get) for name, m in self.cumulative.items()},
            {name: _value(w.get) for name, w in self.rolling.items()},
        )


def _value(get: Any) -> float | None:
    try:
        value = float(get())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value == value and abs(value) != float("inf") else None
