"""The leaderboard of a model: its champion and challengers side by side, from one version's
metadata (the trainer records every challenger's row in each checkpoint)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from model_store.snapshot import SnapshotMeta

SIGNIFICANCE = 0.01
"""p-value under which a paired difference counts as real, not noise."""

SMALLER_IS_BETTER = {"MAE", "MSE", "RMSE", "RMSLE", "SMAPE", "LogLoss", "CrossEntropy"}


class Row(BaseModel):
    name: str
    role: str = Field(description="champion (served) or challenger")
    n_learned: int
    metrics: dict[str, float | None]
    rolling_metrics: dict[str, float | None]
    since: dict[str, Any] | None = Field(default=None, description="when a challenger started learning")
    error: str | None = Field(default=None, description="why a challenger was disabled")
    main_difference: float | None = Field(
        default=None, description="challenger's main metric minus the champion's (cumulative)"
    )
    paired: dict[str, Any] | None = Field(
        default=None,
        description="paired test over the events both scored: n, difference (positive: the challenger "
        "did better), test (mcnemar or paired-z), statistic, p_value",
    )
    better: bool | None = Field(
        default=None, description="true: better beyond noise (p < 0.01); false: worse beyond noise"
    )


class Leaderboard(BaseModel):
    model: str
    version: int
    main_metric: str
    significance: float = SIGNIFICANCE
    rows: list[Row]


def leaderboard(meta: SnapshotMeta, main_metric: str) -> Leaderboard:
    """Champion first, then the challengers by their main metric, best first."""
    champion = Row(
        name="champion",
        role="champion",
        n_learned=meta.n_learned,
        metrics=meta.metrics,
        rolling_metrics=meta.rolling_metrics,
    )
    rows = []
    for name, c in meta.challengers.items():
        mine, theirs = c["metrics"].get(main_metric), meta.metrics.get(main_metric)
        paired = c.get("paired") or {}
        better = None
        if (
            paired.get("p_value") is not None
            and paired["p_value"] < SIGNIFICANCE
            and paired.get("difference")
        ):
            better = paired["difference"] > 0
        rows.append(
            Row(
                name=name,
                role="challenger",
                n_learned=c["n_learned"],
                metrics=c["metrics"],
                rolling_metrics=c["rolling_metrics"],
                since=c.get("since"),
                error=c.get("error"),
                main_difference=None if mine is None or theirs is None else mine - theirs,
                paired=paired or None,
                better=better,
            )
        )
    sign = 1 if main_metric in SMALLER_IS_BETTER else -1
    rows.sort(key=lambda r: (r.metrics.get(main_metric) is None, sign * (r.metrics.get(main_metric) or 0)))
    return Leaderboard(
        model=meta.model, version=meta.version, main_metric=main_metric, rows=[champion, *rows]
    )
