"""Monitors of the learner: a concept drift detector and rolling error rates.

Both are fed the prequential error of every scored event, the 0/1 error of a
classifier or the absolute error of a regressor, in queued runs (``update_many``)
so that the per-event cost stays well under a microsecond. ``Monitors.state()``
holds only River objects and builtins: it travels inside the checkpoint (the API
unpickles it without this package) and a restarted trainer continues the detector
and the windows where they were.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from river import base

from model_store.monitor_reports import (
    ConceptDriftState,
    Detection,
    ErrorRateState,
    MonitorsSummary,
    State,
    worst,
)
from model_store.specs import ModelSpec
from stream.pipeline import build_detector

MAX_DETECTIONS = 100


class ErrorWindows:
    """Mean error over several windows of the last N events, plus the cumulative mean.

    One ring buffer holds the running total after each of the last events, so an
    update is three assignments whatever the number of windows, and a window's sum
    is the difference of two totals, computed only when read.
    """

    def __init__(self, windows: list[int]) -> None:
        self.windows = sorted(windows)
        self._size = self.windows[-1] + 1
        self._totals: list[float] = [0] * self._size
        self._i = 0
        self.n = 0
        self.total: float = 0

    def update(self, error: float) -> None:
        self.extend((error,))

    def extend(self, errors: Sequence[float]) -> None:
        """Append errors in order: running totals summed in C, written with slice copies."""
        if not errors:
            return
        totals = list(accumulate(errors, initial=self.total))
        del totals[0]
        self.n += len(totals)
        self.total = totals[-1]
        size, i = self._size, self._i
        if len(totals) > size:  # only the last ``size`` totals are ever read
            i = (i + len(totals) - size) % size
            totals = totals[-size:]
        head = min(size - i, len(totals))
        self._totals[i : i + head] = totals[:head]
        self._totals[: len(totals) - head] = totals[head:]
        self._i = (i + len(totals)) % size

    def mean(self, window: int) -> float | None:
        """Mean error of the last ``window`` events (fewer while fewer were seen)."""
        n = self.n
        if not n:
            return None
        if n <= window:
            return self.total / n
        return (self.total - self._totals[(self._i - 1 - window) % self._size]) / window

    def values(self, min_events: int = 1) -> dict[str, float | None]:
        """Window size -> mean error; None until the window holds ``min(min_events, size)`` events."""
        return {str(w): self.mean(w) if self.n >= min(min_events, w) else None for w in self.windows}

    def shortest(self) -> float | None:
        return self.mean(self.windows[0])

    def cumulative(self) -> float | None:
        return self.total / self.n if self.n else None

    def state(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "totals": self._totals,
            "i": self._i,
            "n": self.n,
            "total": self.total,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ErrorWindows:
        windows = cls(state["windows"])
        windows._totals, windows._i = state["totals"], state["i"]
        windows.n, windows.total = state["n"], state["total"]
        return windows


def monitor_config(spec: ModelSpec) -> dict[str, Any]:
    """The monitors' settings from the spec, as builtins (stored with their state)."""
    warning, alert = spec.error_rate.thresholds(spec.task)
    return {
        "task": spec.task,
        "detector": spec.drift.detector,
        "params": dict(spec.drift.params),
        "hold_events": spec.drift.hold_events,
        "windows": list(spec.error_rate.windows),
        "warning": warning,
        "alert": alert,
        "min_events": spec.error_rate.min_events,
    }


class Monitors:
    """The concept drift detector and the error-rate windows of one model.

    A detection only counts as drift when the error rose: detectors such as ADWIN
    also find the falls of a model that is still learning, which are counted as
    ``improvements`` and raise no alert. The comparison is the detector's window
    before the cut against what it kept (ADWIN), or for other detectors the error
    since the previous detection against the shortest window. Binary detectors
    (river.drift.binary) watch for a rising error only.
    """

    def __init__(
        self,
        config: dict[str, Any],
        detector: base.DriftDetector | base.BinaryDriftDetector,
        errors: ErrorWindows,
        detections: list[dict[str, Any]] | None = None,
        total: int = 0,
        improvements: int = 0,
        cut: tuple[float, int] = (0.0, 0),
    ) -> None:
        self.config = config
        self.detector = detector
        self.errors = errors
        self.detections = detections if detections is not None else []
        self.total = total
        self.improvements = improvements
        self._cut_total, self._cut_n = cut  # error total and count where the detector's window starts
        self.version: int | None = None  # newest published version, set by the trainer
        self._classification = config["task"] == "classification"
        self._binary = isinstance(detector, base.BinaryDriftDetector)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> Monitors:
        return cls(monitor_config(spec), build_detector(spec), ErrorWindows(spec.error_rate.windows))

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, spec: ModelSpec) -> Monitors:
        """Continue the saved detector and windows unless the spec now configures others."""
        fresh = cls.from_spec(spec)
        if not state:
            return fresh
        old = state["config"]
        same_detector = (old["detector"], old["params"]) == (spec.drift.detector, dict(spec.drift.params))
        same_windows = old["windows"] == list(spec.error_rate.windows)
        if same_detector:
            fresh.detector = state["detector"]
            fresh.detections = state["detections"]
            fresh.total, fresh.improvements = state["total"], state["improvements"]
        if same_windows:
            fresh.errors = ErrorWindows.from_state(state["errors"])
            if same_detector:
                fresh._cut_total, fresh._cut_n = state["cut"]
        return fresh

    def state(self) -> dict[str, Any]:
        """River objects and builtins only."""
        return {
            "config": self.config,
            "detector": self.detector,
            "errors": self.errors.state(),
            "detections": self.detections,
            "total": self.total,
            "improvements": self.improvements,
            "cut": (self._cut_total, self._cut_n),
        }

    def update(self, y: Any, y_pred: Any, n: int) -> None:
        """Score one prediction; ``n`` is the event's number (events learned with it)."""
        self.update_many([(y, y_pred)], n)

    def update_many(self, pairs: Sequence[tuple[Any, Any]], first: int) -> None:
        """Score (y_true, y_pred) pairs in order, exactly as one ``update`` each would; the
        k-th is event number ``first + k``, and a pair without a prediction (None) is not
        scored. The windows are brought up to each detection before it is judged. Event
        numbers are worked out only at a detection: a tuple an event would cost this pass
        a quarter of its time."""
        if self._classification:
            errors: list[Any] = [0 if y_pred == y else 1 for y, y_pred in pairs if y_pred is not None]
        else:
            errors = [abs(y - y_pred) for y, y_pred in pairs if y_pred is not None]
        detector = self.detector
        update = detector.update
        done = 0
        for i, value in enumerate(map(bool, errors) if self._binary else errors):
            update(value)
            if detector.drift_detected:
                self.errors.extend(errors[done : i + 1])
                done = i + 1
                self._detected(first + _position(pairs, i, len(errors)))
        self.errors.extend(errors[done:])

    def _detected(self, n: int) -> None:
        errors, detector = self.errors, self.detector
        if not self._binary:
            before_n = errors.n - self._cut_n
            before = (errors.total - self._cut_total) / before_n if before_n > 0 else None
            kept_n = getattr(detector, "width", None)
            if kept_n:  # ADWIN: its window after the cut
                kept_total = float(detector.total)
                after = kept_total / kept_n
            else:
                kept_n, kept_total, after = 0, 0.0, errors.shortest()
            self._cut_total, self._cut_n = errors.total - kept_total, errors.n - kept_n
            if before is not None and after is not None and after <= before:
                self.improvements += 1
                return
        self.total += 1
        self.detections.append({"n": n, "time": time.time(), "version": self.version})
        del self.detections[:-MAX_DETECTIONS]

    # -- reading -------------------------------------------------------------------

    def drift_state(self, n_learned: int) -> State:
        last = self.detections[-1]["n"] if self.detections else None
        if last is not None and n_learned - last < self.config["hold_events"]:
            return "alert"
        if getattr(self.detector, "warning_detected", False):
            return "warning"
        return "ok"

    def error_rate(self) -> ErrorRateState:
        cfg = self.config
        windows = self.errors.values(cfg["min_events"])
        states: list[str] = []
        for value in windows.values():
            if value is None:
                continue
            if cfg["alert"] is not None and value >= cfg["alert"]:
                states.append("alert")
            elif cfg["warning"] is not None and value >= cfg["warning"]:
                states.append("warning")
            else:
                states.append("ok")
        return ErrorRateState(
            state=worst(*states),
            warning=cfg["warning"],
            alert=cfg["alert"],
            windows=windows,
            cumulative=self.errors.cumulative(),
            n=self.errors.n,
        )

    def summary(self, n_learned: int, recent: int = 20) -> MonitorsSummary:
        return MonitorsSummary(
            concept_drift=ConceptDriftState(
                detector=self.config["detector"],
                state=self.drift_state(n_learned),
                detections_total=self.total,
                improvements=self.improvements,
                detections=[Detection(**d) for d in self.detections[-recent:]],
            ),
            error_rate=self.error_rate(),
        )


def _position(pairs: Sequence[tuple[Any, Any]], i: int, scored: int) -> int:
    """Where in ``pairs`` the ``i``-th pair with a prediction is (``scored`` of them)."""
    if scored == len(pairs):
        return i
    return [k for k, (_, y_pred) in enumerate(pairs) if y_pred is not None][i]
