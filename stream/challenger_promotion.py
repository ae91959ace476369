"""Promoting a challenger: an operator asks (``streamlearn promote`` or the API), or the
``promotion.challengers.auto`` policy does; the trainer applies it and publishes at once.

Only the trainer writes checkpoints, so a promotion is a request in Redis
(``ModelKeys.promote_request``) that the trainer checks between poll batches. It swaps
champion and challenger, publishes a version whose metadata names the promotion (always
served when an operator asked; an automatic one goes through the promotion gate like any
new version), and removes the request once that version exists. A trainer that stopped in
between resumes from that version and only removes the request.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from model_store.snapshot import SnapshotMeta
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, PromoteRequest
from stream.challengers import Challengers

log = logging.getLogger(__name__)


class ChallengerPromotions:
    """Looks for a promotion request at most every ``interval`` seconds (one GET), and keeps
    the one applied until the version it made is published."""

    def __init__(
        self,
        spec: ModelSpec,
        store: CheckpointStore,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.5,
    ) -> None:
        self.spec = spec
        self.store = store
        self.clock = clock
        self.interval = interval
        self.pending: PromoteRequest | None = None  # applied, its version not yet published
        self.former: str | None = None  # the former champion's name as a challenger
        self._next_check = 0.0

    def poll(self, challengers: Challengers, parent: int | None) -> PromoteRequest | None:
        """A request to apply now, or None. One already applied (by version ``parent``, which
        this trainer resumed from) or one that cannot be (no such challenger, or disabled) is
        removed here; Redis away means checking again later."""
        if not challengers:
            return None  # nothing to promote (the API and CLI refuse such a request)
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.interval
        try:
            request = self.store.promote_request(self.spec.name)
        except redis.RedisError:
            return None
        if request is None:
            return None
        if challengers.was_promoted(request.challenger):
            self._finish(request, applied_as=parent)
            return None
        why = challengers.why_not_promote(request.challenger)
        if why is not None:
            log.error("%s: promotion refused: %s", self.spec.name, why)
            self._finish(request, why=why)
            return None
        return request

    def applied(self, request: PromoteRequest, former: str) -> None:
        """The trainer swapped the champion for ``request``'s challenger; the champion is now
        challenger ``former``. The next version says so (``meta``)."""
        self.pending, self.former = request, former
        log.info(
            "%s: challenger %s promoted; the champion is now challenger %s",
            self.spec.name,
            request.challenger,
            former,
        )

    def meta(self) -> dict[str, Any] | None:
        """The ``promotion`` field of the next version's metadata while one is pending."""
        p = self.pending
        if p is None:
            return None
        return {"id": p.id, "challenger": p.challenger, "former": self.former, "reason": p.reason, "by": p.by}

    def published(self, meta: SnapshotMeta, bigger_is_better: bool) -> None:
        """A version exists: it completes the pending promotion (the request is removed), or,
        with none pending, it may call for an automatic one."""
        if self.pending is None:
            self._auto(meta, bigger_is_better)
        elif meta.promotion is not None and meta.promotion["id"] == self.pending.id:
            self._finish(self.pending, applied_as=meta.version)  # else found applied at the next start
            self.pending = None

    def _auto(self, meta: SnapshotMeta, bigger_is_better: bool) -> None:
        """With ``promotion.challengers.auto``: ask for the promotion of the best challenger that
        beats the champion by the margin, beyond noise, over enough events (then applied as any
        promotion, but through the promotion gate like any new version)."""
        policy = self.spec.promotion.challengers
        if not policy.auto or not meta.challengers:
            return
        main = self.spec.main_metric
        sign = 1 if bigger_is_better else -1
        best: tuple[float, str, dict] | None = None
        for name, row in meta.challengers.items():
            paired, mine, theirs = row.get("paired") or {}, row["metrics"].get(main), meta.metrics.get(main)
            if row.get("error") or mine is None or theirs is None:
                continue
            gain = sign * (mine - theirs)
            if (
                paired.get("n", 0) >= policy.min_events
                and paired.get("p_value", 1.0) < policy.significance
                and (paired.get("difference") or 0) > 0
                and gain >= policy.margin
                and (best is None or gain > best[0])
            ):
                best = (gain, name, paired)
        if best is None:
            return
        gain, name, paired = best
        reason = (
            f"auto: {main} {gain:+.4f} over the champion, p={paired['p_value']:.2g} on {paired['n']} events"
        )
        log.info("%s: promoting challenger %s (%s)", self.spec.name, name, reason)
        with contextlib.suppress(redis.RedisError):  # asked again at the next version
            self.store.request_promotion(self.spec.name, name, reason=reason, by="auto")

    def _finish(self, request: PromoteRequest, applied_as: int | None = None, why: str | None = None) -> None:
        with contextlib.suppress(redis.RedisError):  # left for the next start: found applied then
            self.store.finish_promotion(self.spec.name, request, applied_as=applied_as, why=why)
