"""Small statistics of the benchmark, kept apart so they can be tested without services."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def learning_rate(
    samples: Sequence[tuple[float, float]], total: int, low: float = 0.1, high: float = 0.9
) -> float:
    """Events per second from (time, events learned) samples, between ``low`` and ``high``
    of ``total``: start-up (connect, first fetch) and the tail are left out.

    Each count is placed at the first sample that shows it (a counter moved once per
    batch, or once a second, is then a point where it moved, not a staircase). A
    least-squares slope over those points inside the window; with fewer than three of
    them (a run too short for the sampling interval), the slope between the last sample
    below the window and the first one above it."""
    lo, hi = low * total, high * total
    first_seen: dict[float, float] = {}
    for t, n in samples:
        first_seen.setdefault(n, t)
    inside = [(t, n) for n, t in first_seen.items() if lo <= n <= hi]
    if len(inside) >= 3:
        mean_t = sum(t for t, _ in inside) / len(inside)
        mean_n = sum(n for _, n in inside) / len(inside)
        cov = sum((t - mean_t) * (n - mean_n) for t, n in inside)
        var = sum((t - mean_t) ** 2 for t, _ in inside)
        if var > 0 and cov > 0:
            return cov / var
    before = [(t, n) for t, n in samples if n < lo]
    after = [(t, n) for t, n in samples if n > hi]
    if not before or not after:
        raise ValueError(f"samples do not span {low:.0%}..{high:.0%} of {total} events")
    (t0, n0), (t1, n1) = before[-1], after[0]
    return (n1 - n0) / (t1 - t0)
