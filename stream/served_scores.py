"""How good were the predictions the API actually returned? Scored when their labels
arrive, version by version, with the label delays and the join counts."""

from __future__ import annotations

from typing import Any

from river import metrics, stats

from model_store.specs import ModelSpec
from stream.joiner import Joined
from stream.pipeline import build_metric

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
MAX_VERSIONS = 50
"""Versions scored separately; older ones only count in the overall score, so that a
trainer that publishes a version every second keeps a bounded state."""


class ServedScores:
    """The model's main metric on served predictions, per served version and overall."""

    def __init__(self, spec: ModelSpec, state: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.metric_name = spec.main_metric
        state = state or {}
        self.overall: metrics.base.Metric = state.get("overall") or build_metric(self.metric_name, spec)
        self.by_version: dict[int, metrics.base.Metric] = state.get("by_version", {})
        self.counts: dict[int, int] = state.get("counts", {})
        self.n: int = state.get("n", sum(self.counts.values()))
        self.delay: dict[str, stats.Quantile] = state.get("delay") or {
            k: stats.Quantile(q) for k, q in QUANTILES.items()
        }

    def state(self) -> dict[str, Any]:
        """River objects and builtins only (pickled inside checkpoints)."""
        return {
            "overall": self.overall,
            "by_version": self.by_version,
            "counts": self.counts,
            "n": self.n,
            "delay": self.delay,
        }

    def update(self, joined: Joined) -> None:
        """Score one served prediction against its label."""
        # a classifier's metric that ranks (ROCAUC, LogLoss) scores the probabilities;
        # regression metrics have no requires_labels and score the prediction
        wants_proba = not getattr(self.overall, "requires_labels", True)
        score = joined.proba if wants_proba and joined.proba else joined.prediction
        if score is None:
            return
        version = joined.version if joined.version is not None else -1
        metric = self.by_version.get(version)
        if metric is None:
            metric = self.by_version[version] = build_metric(self.metric_name, self.spec)
            for old in sorted(self.by_version)[:-MAX_VERSIONS]:
                del self.by_version[old]
                self.counts.pop(old, None)
        metric.update(joined.label, score)
        self.overall.update(joined.label, score)
        self.counts[version] = self.counts.get(version, 0) + 1
        self.n += 1
        for q in self.delay.values():
            q.update(joined.delay_ms / 1000.0)

    def summary(self, join_counts: dict[str, int]) -> dict[str, Any]:
        """JSON-ready figures for the checkpoint metadata, /monitors and the dashboard."""
        return {
            "metric": self.metric_name,
            "overall": _value(self.overall) if self.n else None,  # no label yet: no score, not 0
            "n": self.n,
            "by_version": {
                str(v): {"value": _value(m), "n": self.counts.get(v, 0)}
                for v, m in sorted(self.by_version.items())
            },
            "label_delay_seconds": {k: _value(q) for k, q in self.delay.items()},
            "joins": dict(join_counts),
        }


def _value(obj: Any) -> float | None:
    try:
        value = float(obj.get())
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value == value and abs(value) != float("inf") else None
