"""One challenger against the predictions the API actually served (the leaderboard's served column).

Replicas serve only the champion. When a delayed label joins a served prediction, the
trainer lets each challenger predict on the logged features of that request before it
learns the label (test-then-train), and scores that prediction here beside the one that
was served, on the very same requests: the challenger's main metric, the served
champion's main metric over the same requests, and a paired test between the two. A
challenger added later is compared only on the requests joined since it exists, so both
figures always cover the same requests.

Part of the challenger's training state (checkpointed with it), so a restarted trainer
neither loses nor repeats a join's score.
"""

from __future__ import annotations

from typing import Any

from river import metrics

from model_store.specs import ModelSpec
from stream.joiner import Joined
from stream.paired_test import PairedTest
from stream.pipeline import build_metric


class ServedComparison:
    """A challenger's main metric and the served champion's on the joined requests both scored.

    Parameters
    ----------
    spec
        The model's spec: its main metric and task.
    state
        What ``state()`` returned, to continue from a checkpoint.

    Examples
    --------
    >>> from model_store.specs import ModelSpec
    >>> from stream.joiner import Joined
    >>> spec = ModelSpec.model_validate({"name": "m", "topic": "m", "task": "classification",
    ...     "pipeline": ["linear_model.LogisticRegression"], "metrics": ["Accuracy"]})
    >>> served = ServedComparison(spec)
    >>> served.update(Joined("a", {"x": 1}, True, False, None, 1, 10), {False: 0.2, True: 0.8})
    >>> s = served.summary()
    >>> s["value"], s["champion"], s["n"]
    (1.0, 0.0, 1)
    """

    def __init__(self, spec: ModelSpec, state: dict[str, Any] | None = None) -> None:
        self.spec = spec
        s = state or {}
        self._mine: metrics.base.Metric = s.get("mine") or build_metric(spec.main_metric, spec)
        self._served: metrics.base.Metric = s.get("served") or build_metric(spec.main_metric, spec)
        self._test = PairedTest(spec.task, s.get("test"))
        self.n: int = s.get("n", 0)

    def state(self) -> dict[str, Any]:
        """River metrics and builtins only (pickled inside the training state)."""
        return {"mine": self._mine, "served": self._served, "test": self._test.state(), "n": self.n}

    def update(self, joined: Joined, output: Any) -> None:
        """Score the challenger's ``output`` on ``joined.features`` (made before it learned the
        label: a predicted label or value, or class probabilities) beside what was served.

        A request either side has no prediction for is left out of both, so the two figures
        always cover the same requests (as River's progressive validation skips them)."""
        # a metric that ranks (ROCAUC, LogLoss) scores probabilities, as ServedScores does
        wants_proba = not getattr(self._mine, "requires_labels", True)
        if isinstance(output, dict):
            proba, label = output, (max(output, key=output.get) if output else None)
        else:
            proba, label = None, output
        mine = proba if wants_proba and proba else label
        theirs = joined.proba if wants_proba and joined.proba else joined.prediction
        if label is None or mine is None or theirs is None or joined.prediction is None:
            return
        self._mine.update(joined.label, mine)
        self._served.update(joined.label, theirs)
        self._test.update(joined.label, joined.prediction, label)
        self.n += 1

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the metric's name and both values, the count, the paired test's result
        (its ``difference`` positive when the challenger did better)."""
        mine, served = _value(self._mine, self.n), _value(self._served, self.n)
        return {
            "metric": self.spec.main_metric,
            "value": mine,
            "champion": served,
            "n": self.n,
            "paired": self._test.result(),
        }


def _value(metric: metrics.base.Metric, n: int) -> float | None:
    if not n:
        return None  # nothing scored yet: no score, not 0
    try:
        value = float(metric.get())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value == value and abs(value) != float("inf") else None
