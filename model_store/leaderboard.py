"""The leaderboard of a model: its champion and challengers side by side, from one version's
metadata (the trainer records every challenger's row in each checkpoint)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from model_store.snapshot import SnapshotMeta

SIGNIFICANCE = 0.01
"""p-value under which a paired difference counts as real, not noise."""

SMALLER_IS_BETTER = {"MAE", "MSE", "RMSE", "RMSLE", "SMAPE", "LogLoss", "CrossEntropy"}


class ServedColumn(BaseModel):
    """The served column: how each pipeline did on the requests that were served and labelled.

    Replicas serve only the champion. For the champion it is the main metric of what was
    actually served (every joined request). For a challenger, the trainer predicted on each
    joined request's logged features before learning its label; it is that metric over the
    joined requests scored since the challenger exists, beside the served champion's over
    the very same requests, with a paired test between the two."""

    metric: str = Field(description="the model's main metric")
    value: float | None = Field(
        description="champion: on what was served; challenger: on its own predictions for the same requests"
    )
    n: int = Field(description="joined requests (served predictions whose labels arrived) scored")
    champion: float | None = Field(
        default=None,
        description="challenger rows: the served champion's metric over the same n requests "
        "(a challenger added later is compared only on requests joined since it exists)",
    )
    difference: float | None = Field(
        default=None, description="challenger rows: value minus champion (the metric's own sign)"
    )
    paired: dict[str, Any] | None = Field(
        default=None,
        description="challenger rows: paired test against the served predictions over the n requests: "
        "n, difference (positive: the challenger did better), test, statistic, p_value",
    )
    better: bool | None = Field(
        default=None, description="challenger rows: true better, false worse, beyond noise (p < 0.01)"
    )


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
    served: ServedColumn | None = Field(
        default=None, description="on served requests whose labels arrived (models with delayed labels)"
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
        served=_served_champion(meta),
    )
    rows = []
    for name, c in meta.challengers.items():
        mine, theirs = c["metrics"].get(main_metric), meta.metrics.get(main_metric)
        paired = c.get("paired") or {}
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
                better=_verdict(paired),
                served=_served_challenger(meta, c.get("served")),
            )
        )
    sign = 1 if main_metric in SMALLER_IS_BETTER else -1
    rows.sort(key=lambda r: (r.metrics.get(main_metric) is None, sign * (r.metrics.get(main_metric) or 0)))
    return Leaderboard(
        model=meta.model, version=meta.version, main_metric=main_metric, rows=[champion, *rows]
    )


def _verdict(paired: dict[str, Any] | None) -> bool | None:
    """True or False when the paired test says better or worse beyond noise, else None."""
    paired = paired or {}
    if paired.get("p_value") is not None and paired["p_value"] < SIGNIFICANCE and paired.get("difference"):
        return paired["difference"] > 0
    return None


def _served_champion(meta: SnapshotMeta) -> ServedColumn | None:
    if not meta.served:
        return None  # the model does not log predictions: nothing was scored as served
    return ServedColumn(
        metric=meta.served["metric"], value=meta.served.get("overall"), n=meta.served.get("n", 0)
    )


def _served_challenger(meta: SnapshotMeta, served: dict[str, Any] | None) -> ServedColumn | None:
    if not meta.served:
        return None
    if not served:  # written before the served column existed
        return ServedColumn(metric=meta.served["metric"], value=None, n=0)
    mine, theirs = served.get("value"), served.get("champion")
    return ServedColumn(
        metric=served["metric"],
        value=mine,
        n=served["n"],
        champion=theirs,
        difference=None if mine is None or theirs is None else mine - theirs,
        paired=served.get("paired"),
        better=_verdict(served.get("paired")) if served["n"] else None,
    )
