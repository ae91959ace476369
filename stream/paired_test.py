"""A paired significance test of a challenger against the champion on the events both scored:
"better" means better beyond noise, not better by chance on this stream so far."""

from __future__ import annotations

import math
from typing import Any


class PairedTest:
    """Champion against one challenger on the events both scored.

    Classification: ``b`` events only the champion got right, ``c`` only the challenger;
    McNemar's statistic with continuity correction. Regression: the running mean and
    variance (Welford) of |champion error| - |challenger error|; a z-test. Positive
    ``difference`` means the challenger did better."""

    def __init__(self, task: str, state: dict[str, Any] | None = None) -> None:
        self.task = task
        s = state or {}
        self.n, self.b, self.c = s.get("n", 0), s.get("b", 0), s.get("c", 0)
        self.mean, self.m2 = s.get("mean", 0.0), s.get("m2", 0.0)

    def update(self, y: Any, champion: Any, challenger: Any) -> None:
        if champion is None or challenger is None:
            return
        self.n += 1
        if self.task == "classification":
            right, rival = champion == y, challenger == y
            self.b += right and not rival
            self.c += rival and not right
        else:
            d = abs(y - champion) - abs(y - challenger)
            delta = d - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (d - self.mean)

    def state(self) -> dict[str, Any]:
        return {"n": self.n, "b": self.b, "c": self.c, "mean": self.mean, "m2": self.m2}

    def result(self) -> dict[str, Any]:
        """n, the difference (challenger better when positive), the statistic and its p-value."""
        if self.task == "classification":
            discordant = self.b + self.c
            difference = (self.c - self.b) / self.n if self.n else None
            if discordant == 0:
                return {
                    "n": self.n,
                    "difference": difference,
                    "test": "mcnemar",
                    "statistic": 0.0,
                    "p_value": 1.0,
                }
            chi2 = (abs(self.b - self.c) - 1) ** 2 / discordant
            p = math.erfc(math.sqrt(chi2 / 2))  # chi-square with 1 degree of freedom
            return {"n": self.n, "difference": difference, "test": "mcnemar", "statistic": chi2, "p_value": p}
        if self.n < 2:
            return {"n": self.n, "difference": None, "test": "paired-z", "statistic": 0.0, "p_value": 1.0}
        sd = math.sqrt(self.m2 / (self.n - 1))
        z = self.mean / (sd / math.sqrt(self.n)) if sd > 0 else 0.0
        return {
            "n": self.n,
            "difference": self.mean,
            "test": "paired-z",
            "statistic": z,
            "p_value": math.erfc(abs(z) / math.sqrt(2)),
        }
