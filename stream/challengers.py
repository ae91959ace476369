"""Challengers: other pipelines learning the same events as the served one (the champion).

Each challenger is a ``Learner`` of its own (no monitors), fed the very events the
champion learned, in the same order, test-then-train, so their prequential metrics
compare on equal terms. Beside its metrics, each keeps a paired test against the
champion over the events both scored: McNemar's test on who was right for a
classifier, a z-test on the difference of absolute errors for a regressor, so
"better" means better beyond noise. A challenger that raises on an event is disabled
with the error recorded, and never stops the champion.

With delayed labels, each challenger also predicts on the logged features of every
served prediction whose label joins, before learning it, and is scored beside what was
served (``ServedComparison``: the leaderboard's served column).

Challengers are part of the model's training state: the same checkpoint, the same
offsets, so exactly-once, reset and rollback cover them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from model_store.specs import ModelSpec
from stream.joiner import Joined
from stream.learner import Learner, WindowedMetric
from stream.paired_test import PairedTest
from stream.pipeline import build_metric, build_pipeline_steps
from stream.served_comparison import ServedComparison

log = logging.getLogger(__name__)


class Challenger:
    """One challenger: its learner, since when it learns, its paired test, its error if disabled,
    and its comparison with the served predictions (delayed labels)."""

    def __init__(
        self,
        name: str,
        learner: Learner,
        test: PairedTest,
        since: dict[str, Any],
        served: ServedComparison,
        error: str | None = None,
    ) -> None:
        self.name, self.learner, self.test, self.since, self.error = name, learner, test, since, error
        self.served = served

    @classmethod
    def from_state(cls, name: str, state: dict[str, Any], spec: ModelSpec) -> Challenger:
        """Continue a checkpointed challenger (one saved before the served column scores from now)."""
        return cls(
            name,
            Learner.from_state(state["learner"]),
            PairedTest(spec.task, state["test"]),
            state["since"],
            ServedComparison(spec, state.get("served")),
            state["error"],
        )

    @classmethod
    def fresh(cls, name: str, steps: list[Any], spec: ModelSpec, champion_learned: int) -> Challenger:
        cumulative = {m: build_metric(m, spec) for m in spec.metrics}
        rolling = {m: WindowedMetric(type(c), spec.rolling_window) for m, c in cumulative.items()}
        learner = Learner(build_pipeline_steps(steps, spec, f"challengers.{name}"), cumulative, rolling)
        since = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "champion_learned": champion_learned}
        return cls(name, learner, PairedTest(spec.task), since, ServedComparison(spec))

    def state(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state(),
            "test": self.test.state(),
            "since": self.since,
            "error": self.error,
            "served": self.served.state(),
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
            "served": self.served.summary(),
        }

    def point(self) -> dict[str, Any]:
        """What the live chart draws each second: the rolling metrics, and whether it is disabled."""
        _, rolling = self.learner.metric_values()
        return {"rolling": rolling, "disabled": self.error is not None}


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
            members[name] = Challenger.from_state(name, saved[name], spec)
        for name, steps in spec.challengers.items():
            if name in promoted:
                continue  # it is the champion now
            if name in saved:
                members[name] = Challenger.from_state(name, saved[name], spec)
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
            if member.error is None:
                self._learn(member, events, start, stop, champion)

    def _learn(
        self,
        member: Challenger,
        events: Sequence[Any],
        start: int,
        stop: int,
        champion: Sequence[tuple[Any, Any]],
    ) -> int:
        """One challenger's run; returns where it stopped (``stop`` unless it raised: disabled)."""
        done, error = member.learner.learn_many(events, start, stop)
        ours = member.learner.recent_predictions(done - start)
        for (y, theirs), (_, mine) in zip(champion, ours, strict=False):
            member.test.update(y, theirs, mine)
        if error is not None:
            member.error = f"{type(error).__name__}: {error} (at event {member.learner.n_learned + 1})"
            log.error("%s: challenger %s disabled: %s", self.spec.name, member.name, member.error)
        return done

    def learn_joined(self, joined: Joined, champion: Any) -> None:
        """A delayed label's event (``champion``: what the champion predicted before learning it),
        learned by every active challenger too; what each predicted on the served request's
        features before learning the label is scored beside the prediction that was served."""
        events = [(joined.features, joined.label)]
        for member in self.members.values():
            if member.error is not None or self._learn(member, events, 0, 1, [(joined.label, champion)]) < 1:
                continue
            try:
                member.served.update(joined, member.learner.last_output())
            except Exception as exc:  # a label the metric cannot score: learned, not scored
                log.warning(
                    "%s: served request %s not scored for challenger %s: %s",
                    self.spec.name,
                    joined.id,
                    member.name,
                    exc,
                )

    def was_promoted(self, name: str) -> bool:
        """Whether ``name`` became the champion already: by the version this trainer resumed
        from, when it stopped before the request was removed."""
        return name in self.promoted and name not in self.members

    def why_not_promote(self, name: str) -> str | None:
        """Why ``name`` cannot become the champion (no such challenger, or disabled); None if it can."""
        member = self.members.get(name)
        if member is None:
            return f"no challenger '{name}'; challengers: {sorted(self.members)}"
        if member.error is not None:
            return f"challenger '{name}' is disabled: {member.error}"
        return None

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
        self.members[former] = Challenger(
            former, old, PairedTest(self.spec.task), since, ServedComparison(self.spec)
        )
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

    def points(self) -> dict[str, dict[str, Any]]:
        """Each challenger's part of the metric point (the live chart's lines)."""
        return {name: m.point() for name, m in self.members.items()}
