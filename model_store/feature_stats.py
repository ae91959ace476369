"""Per-feature distribution summaries, and how far live traffic departs from them.

The trainer summarises the features of the events it learned from and stores
the summary with every checkpoint; the API scores the features of recent
prediction requests against the served version's summary. Both sides use this
module, so they bin values identically.

The score is the population stability index (PSI) over the reference's bins:
quantile bins of the training values for a numeric feature, categories for
the others, plus one bin for a missing value:

    PSI = sum_i (q_i - p_i) * ln(q_i / p_i)

with p the training shares and q the live shares, both smoothed with half a
count per bin (Jeffreys prior) so an empty bin stays finite. PSI is the
symmetrised Kullback-Leibler divergence; with k bins, n live and N reference
values, its expectation when nothing changed is about (k - 1) * (1/n + 1/N),
0.01-0.05 for the defaults, against the conventional thresholds of 0.1
(moderate) and 0.25 (significant shift).
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OTHER = "__other__"
SMOOTHING = 0.5


class FeatureStats(BaseModel):
    """The distribution of one feature in a sample of events."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["numeric", "categorical"]
    n: int = Field(ge=0, description="Events in the sample")
    missing: float = Field(ge=0, le=1, description="Share of events without a (finite) value")
    edges: list[float] = Field(
        default_factory=list, description="Numeric: upper edges of the quantile bins; the last bin is open"
    )
    shares: list[float] = Field(
        default_factory=list, description="Numeric: share of present values per bin (len(edges) + 1)"
    )
    categories: dict[str, float] = Field(
        default_factory=dict,
        description=f"Categorical: share of present values per category ('{OTHER}': the rest)",
    )
    mean: float | None = None
    std: float | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _category(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _numeric(values: list[float], n: int, bins: int) -> FeatureStats:
    values.sort()
    m = len(values)
    mean = math.fsum(values) / m
    cuts = statistics.quantiles(values, n=bins, method="inclusive") if m > 1 else list(values)
    edges = sorted({float(c) for c in cuts})
    below = [bisect_right(values, e) for e in edges]
    shares = [(hi - lo) / m for lo, hi in zip([0, *below], [*below, m], strict=True)]
    return FeatureStats(
        kind="numeric",
        n=n,
        missing=(n - m) / n,
        edges=edges,
        shares=shares,
        mean=mean,
        std=math.sqrt(math.fsum((v - mean) ** 2 for v in values) / m),
    )


def _categorical(values: list[Any], n: int, max_categories: int) -> FeatureStats:
    counts = Counter(_category(v) for v in values)
    m = len(values)
    top = dict(counts.most_common(max_categories))
    categories = {k: c / m for k, c in top.items()}
    rest = m - sum(top.values())
    if rest:
        categories[OTHER] = rest / m
    return FeatureStats(kind="categorical", n=n, missing=(n - m) / n, categories=categories)


def summarize(
    samples: Sequence[Mapping[str, Any]], bins: int = 10, max_categories: int = 20, max_features: int = 200
) -> dict[str, FeatureStats]:
    """Summaries of every feature seen in ``samples`` (at most ``max_features``, the most
    frequent first). A feature is numeric when all its present values are numbers."""
    n = len(samples)
    if not n:
        return {}
    seen: Counter[str] = Counter()
    for x in samples:
        seen.update(x.keys())
    stats: dict[str, FeatureStats] = {}
    for name in sorted(name for name, _ in seen.most_common(max_features)):
        present = [v for v in (x.get(name) for x in samples) if v is not None]
        if set(map(type, present)) <= {int, float}:
            finite = [float(v) for v in present if math.isfinite(v)]
            stats[name] = _numeric(finite, n, bins) if finite else _categorical([], n, max_categories)
        else:
            stats[name] = _categorical(present, n, max_categories)
    return stats


def _live_counts(reference: FeatureStats, values: Iterable[Any]) -> list[int]:
    """Counts of ``values`` in the reference's bins; the last bin is 'missing'."""
    if reference.kind == "numeric":
        edges = reference.edges
        counts = [0] * (len(edges) + 2)
        for v in values:
            counts[bisect_left(edges, v) if _is_number(v) else -1] += 1
        return counts
    index = {c: i for i, c in enumerate(reference.categories)}
    other = index.get(OTHER, len(index))
    counts = [0] * (max(len(index), other + 1) + 1)
    for v in values:
        counts[-1 if v is None else index.get(_category(v), other)] += 1
    return counts


def _reference_shares(reference: FeatureStats, n_bins: int) -> list[float]:
    present = 1.0 - reference.missing
    if reference.kind == "numeric":
        shares = [s * present for s in reference.shares]
    else:
        shares = [s * present for s in reference.categories.values()]
    shares += [0.0] * (n_bins - 1 - len(shares))  # an unseen category bin, when 'other' never occurred
    return [*shares, reference.missing]


def psi(reference: FeatureStats, values: Sequence[Any]) -> float:
    """Population stability index of ``values`` (None = missing) against ``reference``."""
    counts = _live_counts(reference, values)
    k = len(counts)
    n_live, n_ref = len(values), max(reference.n, 1)
    expected = _reference_shares(reference, k)
    score = 0.0
    for c, share in zip(counts, expected, strict=True):
        q = (c + SMOOTHING) / (n_live + SMOOTHING * k)
        p = (share * n_ref + SMOOTHING) / (n_ref + SMOOTHING * k)
        score += (q - p) * math.log(q / p)
    return score


def psi_scores(
    reference: Mapping[str, FeatureStats], samples: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """PSI of every reference feature over ``samples`` (feature dicts; absent = missing)."""
    if not samples:
        return {}
    return {name: psi(stats, [x.get(name) for x in samples]) for name, stats in reference.items()}
