"""Challengers: other pipelines learning the same events as the served one (the champion).

Each challenger is a ``Learner`` of its own (no monitors), fed the very events the
champion learned, in the same order, test-then-train, so their prequential metrics
compare on equal terms. Beside its metrics, each keeps a paired test against the
champion over the events both scored: McNemar's test on who was right for a
classifier, a z-test on the difference of absolute errors for a regressor, so
"better" means better beyond noise. A challenger that raises on an event is disabled
with the error recorded, and never stops the champion.

Challengers are part of the model's training state: the same checkpoint, the same
offsets, so exactly-once, reset and rollback cover them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from model_store.specs import ModelSpec
from stream.learner import Learner, WindowedMetric
from stream.pipeline import build_metric, build_pipeline_steps

log = logging.getLogger(__name__)


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


class Challenger:
    """One challenger: its learner, since when it learns, its paired test, its error if disabled."""

    def __init__(
        self,
        name: str,
        learner: Learner,
        test: PairedTest,
        since: dict[str, Any],
        error: str | None = None,
    ) -> None:
        self.name, self.learner, self.test, self.since, self.error = name, learner, test, since, error

    @classmethod
    def fresh(cls, name: str, steps: list[Any], spec: ModelSpec, champion_learned: int) -> Challenger:
        cumulative = {m: build_metric(m, spec) for m in spec.metrics}
        rolling = {m: WindowedMetric(type(c), spec.rolling_window) for m, c in cumulative.items()}
        learner = Learner(build_pipeline_steps(steps, spec, f"challengers.{name}"), cumulative, rolling)
        since = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "champion_learned": champion_learned}
        return cls(name, learner, PairedTest(spec.task), since)

    def state(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state(),
            "test": self.test.state(),
            "since": self.since,
            "error": self.error,
        }

    def summary(self, main: str) -> dict[str, Any]:
        """The challenger's leaderboard row (metadata of every checkpoint)."""
        cumulative, rolling = self.learner.metric_values()
        return {
            "metrics": cumulative,
            "rolling_metrics": rolling,
            "n_learned": self.learner.n_learned,
            "since": self.since,
            "error": self.error,
            "paired": self.test.result(),
            "main_metric": main,
        }


class Challengers:
    """Every challenger of one model, learning beside its champion."""

    def __init__(
        self,
        spec: ModelSpec,
        members: dict[str, Challenger],
        promoted: set[str] | None = None,
        kept: set[str] | None = None,
    ) -> None:
        self.spec, self.members = spec, members
        self.promoted = promoted or set()  # YAML challengers that became the champion
        self.kept = kept or set()  # former champions, challengers the YAML does not list

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, state: dict[str, Any] | None = None, champion_learned: int = 0
    ) -> Challengers:
        """The spec's challengers: continued from ``state`` where it has them, fresh from the next
        event where it does not (added since); ones the spec no longer lists are dropped."""
        saved = (state or {}).get("members", {})
        promoted = set((state or {}).get("promoted", []))
        kept = set((state or {}).get("kept", [])) & set(saved)
        members = {}
        for name in sorted(kept):
            s = saved[name]
            learner = Learner.from_state(s["learner"])
            members[name] = Challenger(
                name, learner, PairedTest(spec.task, s["test"]), s["since"], s["error"]
            )
        for name, steps in spec.challengers.items():
            if name in promoted:
                continue  # it is the champion now
            if name in saved:
                s = saved[name]
                learner = Learner.from_state(s["learner"])
                members[name] = Challenger(
                    name, learner, PairedTest(spec.task, s["test"]), s["since"], s["error"]
                )
            else:
                members[name] = Challenger.fresh(name, steps, spec, champion_learned)
        return cls(spec, members, promoted, kept)

    def __bool__(self) -> bool:
        return bool(self.members)

    def learn(
        self, events: Sequence[Any], start: int, stop: int, champion: Sequence[tuple[Any, Any]]
    ) -> None:
        """Test-then-train every active challenger on ``events[start:stop]`` (all (x, y), all learned
        by the champion, whose (y, prediction) pairs are ``champion``)."""
        for member in self.members.values():
            if member.error is not None:
                continue
            done, error = member.learner.learn_many(events, start, stop)
            ours = member.learner.recent_predictions(done - start)
            for (y, theirs), (_, mine) in zip(champion, ours, strict=False):
                member.test.update(y, theirs, mine)
            if error is not None:
                member.error = f"{type(error).__name__}: {error} (at event {member.learner.n_learned + 1})"
                log.error("%s: challenger %s disabled: %s", self.spec.name, member.name, member.error)

    def learn_one(self, x: dict, y: Any, champion: Any) -> None:
        """A delayed label's event, learned by every active challenger too."""
        self.learn([(x, y)], 0, 1, [(y, champion)])

    def promote(self, name: str, champion: Learner, former: str) -> Learner:
        """Make challenger ``name`` the champion (its learned state, no relearning, fresh monitors);
        the champion stays on as challenger ``former``. Returns the new champion's learner."""
        member = self.members.pop(name)
        new = Learner.from_state(member.learner.state(), self.spec)
        since = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "champion_learned": new.n_learned,
            "former_champion": True,
        }
        old = Learner.from_state(champion.state())
        self.members[former] = Challenger(former, old, PairedTest(self.spec.task), since)
        self.promoted.add(name)
        self.kept.add(former)
        return new

    def state(self) -> dict[str, Any]:
        return {
            "members": {name: m.state() for name, m in self.members.items()},
            "promoted": sorted(self.promoted),
            "kept": sorted(self.kept & set(self.members)),
        }

    def summary(self) -> dict[str, Any]:
        return {name: m.summary(self.spec.main_metric) for name, m in self.members.items()}
