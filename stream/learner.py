"""Test-then-train, one event at a time, with no Kafka in it.

``Learner.learn_many`` predicts each event, learns it, then scores the prediction made
before learning against the label (the cumulative prequential metrics): the metrics
are honest because the model never saw the event it is scored on.

Only what the plain River loop does happens per event, over a run of events with
everything bound once. The rest of the scoring (the rolling-window
metrics, the drift detector, the error-rate windows) is queued and applied in one
pass when anything reads it, or every ``SETTLE_EVERY`` events: the same results in
the same order, for a fraction of the per-event cost (docs/benchmarks.md compares the
trainer with the plain loop).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from river import base, metrics, utils

from model_store.specs import ModelSpec
from stream.learner_monitors import Monitors
from stream.pipeline import build_metric, build_pipeline

DEFAULT_SAMPLE = 2000
SETTLE_EVERY = 4096
"""Queued scores applied at the latest after this many events (bounds memory and delay)."""
TIMED_EVERY = 16
"""One event in this many is timed for ``learn_many``'s ``timer``: two clock reads and a
histogram update per event would cost a tenth of a linear model's learning step."""


class WindowedMetric:
    """A metric over the last ``size`` scored events, computed when read.

    River's ``utils.Rolling`` updates and reverts its metric at every event. The trainer
    reads a rolling value about twice a second, so keeping the (y_true, y_pred) pairs and
    replaying them into a fresh metric when read is cheaper at any rate that matters, and
    exact (nothing is reverted)."""

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
    def from_state(cls, state: Any, size: int | None = None) -> WindowedMetric:
        """The saved window, resized to ``size`` when given (its newest pairs kept)."""
        if isinstance(state, utils.Rolling):  # written before WindowedMetric: same pairs inside
            metric, saved, pairs = type(state.obj), state.window_size, [args for args, _ in state.window]
        else:
            metric, saved, pairs = state["metric"], state["size"], state["pairs"]
        return cls(metric, size or saved, pairs)


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
        # (y, what the model predicted: y_pred, or the probabilities when a metric takes
        # them) of every event learned since the last ``settle``
        self._queued: list[tuple[Any, Any]] = []

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Learner:
        cumulative = {name: build_metric(name, spec) for name in spec.metrics}
        rolling = {name: WindowedMetric(type(m), spec.rolling_window) for name, m in cumulative.items()}
        return cls(
            build_pipeline(spec), cumulative, rolling, 0, Monitors.from_spec(spec), spec.data_drift.sample
        )

    @classmethod
    def from_state(cls, state: dict[str, Any], spec: ModelSpec | None = None) -> Learner:
        """Continue a checkpoint; with ``spec``, its monitors too (or fresh ones if it has none)
        and its rolling window as long as the spec now says."""
        monitors = Monitors.from_state(state.get("monitors"), spec) if spec is not None else None
        sample = spec.data_drift.sample if spec is not None else DEFAULT_SAMPLE
        size = spec.rolling_window if spec is not None else None
        rolling = {name: WindowedMetric.from_state(s, size) for name, s in state["rolling"].items()}
        return cls(state["model"], state["metrics"], rolling, state["n_learned"], monitors, sample)

    @property
    def monitors(self) -> Monitors | None:
        """The drift detector and error-rate windows, up to date with every event learned."""
        self.settle()
        return self._monitors

    def at_version(self, version: int | None) -> None:
        """This state is now part of ``version`` (the one resumed from, or the newest published):
        drift detections from the next event on name it. What was learned before is settled
        first, so its detections keep the version they happened under."""
        monitors = self.monitors
        if monitors is not None:
            monitors.version = version

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
        """Test-then-train one event (``learn_many``); return the prediction made before
        learning. Raises what the model raised when it refused the event."""
        _, error = self.learn_many([(x, y)], 0, 1)
        if error is not None:
            raise error
        out = self._queued[-1][1]
        if self._needs_proba:
            return max(out, key=out.get) if out else None
        return out

    def learn_many(
        self,
        events: Sequence[Any],
        start: int,
        stop: int,
        timer: Callable[[float], None] | None = None,
    ) -> tuple[int, Exception | None]:
        """Test-then-train ``events[start:stop]`` while they are (x, y) tuples, in order.

        Returns where it stopped: ``stop``, or the index of the first event that is not
        a tuple, or of the one the model refused, with what it raised. Each event is
        predicted, learned, then scored with the prediction made before learning (the
        metrics stay prequential, and an event the model refuses is not counted in
        them). Everything is bound once per call, so the per-event cost around River
        is little more than the plain loop's. ``timer`` gets the duration of one event
        in ``TIMED_EVERY``."""
        if len(self._queued) >= SETTLE_EVERY:
            self.settle()
        model = self.model
        learn, proba = model.learn_one, self._needs_proba
        predict = model.predict_proba_one if proba else model.predict_one
        by_label = [m.update for m in self._metrics if not proba or m.requires_labels]
        by_proba = [m.update for m in self._metrics if proba and not m.requires_labels]
        queue, sample = self._queued.append, self.sample.append
        timed, clock, every = timer or _untimed, time.perf_counter, TIMED_EVERY
        n, i = self.n_learned, start
        try:
            for i in range(start, stop):
                event = events[i]
                if type(event) is not tuple:
                    return i, None
                x, y = event
                if n % every:
                    out = predict(x)
                    learn(x, y)
                else:
                    started = clock()
                    out = predict(x)
                    learn(x, y)
                    timed(clock() - started)
                n += 1
                sample(x)
                queue((y, out))
                if proba:
                    if out:
                        for update in by_proba:
                            update(y, out)
                        y_pred = max(out, key=out.get)
                        for update in by_label:
                            update(y, y_pred)
                elif out is not None:
                    for update in by_label:
                        update(y, out)
            return stop, None
        except Exception as exc:  # the model (or a metric) refused event i
            return i, exc
        finally:
            self.n_learned = n

    def recent_predictions(self, k: int) -> list[tuple[Any, Any]]:
        """(y, predicted label or value) of the last ``k`` events learned, as scored: what a
        paired comparison with another learner on the same events needs."""
        queued = self._queued[len(self._queued) - k :] if k else []
        if self._needs_proba:
            return [(y, max(p, key=p.get) if p else None) for y, p in queued]
        return list(queued)

    def last_output(self) -> Any:
        """What the model predicted for the last event learned, before learning it: the
        label or value, or the class probabilities when a metric scores them."""
        return self._queued[-1][1] if self._queued else None

    def settle(self) -> None:
        """Apply the queued (y, prediction) pairs to the rolling metrics and the monitors,
        in order; the queue holds every event learned since the last settle."""
        queued = self._queued
        if not queued:
            return
        self._queued = []
        first = self.n_learned - len(queued) + 1
        if self._needs_proba:
            by_label = [(y, max(p, key=p.get) if p else None) for y, p in queued]
            for name, window in self.rolling.items():
                if self.cumulative[name].requires_labels:
                    window.extend(_newest(by_label, window.size))
                else:
                    window.extend(_newest(queued, window.size, probabilities=True))
        else:
            by_label = queued
            for window in self.rolling.values():
                window.extend(_newest(by_label, window.size))
        if self._monitors is not None:
            self._monitors.update_many(by_label, first)

    def metric_values(self) -> tuple[dict[str, float | None], dict[str, float | None]]:
        """(cumulative, rolling) current values by metric name."""
        self.settle()
        return (
            {name: _value(m.get) for name, m in self.cumulative.items()},
            {name: _value(w.get) for name, w in self.rolling.items()},
        )


def _newest(pairs: list[tuple[Any, Any]], size: int, probabilities: bool = False) -> list[tuple[Any, Any]]:
    """The last ``size`` pairs that hold a prediction (a label, or with ``probabilities`` a
    non-empty dict), in order: a window keeps no more, so a settle of thousands of events
    does not walk them all."""

    def scored(pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        if probabilities:
            return [pair for pair in pairs if pair[1]]
        return [pair for pair in pairs if pair[1] is not None]

    kept = scored(pairs[-size:])
    if len(kept) < size < len(pairs):  # unscored events in the tail: look further back
        kept = scored(pairs)[-size:]
    return kept


def _untimed(seconds: float) -> None:
    pass


def _value(get: Any) -> float | None:
    try:
        value = float(get())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value == value and abs(value) != float("inf") else None
