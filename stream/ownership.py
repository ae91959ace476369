"""A trainer's hold on its model: wait as a standby, own, renew, notice a loss, release.

The lease and its fencing epoch live in Redis (model_store/leases.py); this is the
trainer's side of it. A thread renews the lease every ``renew`` seconds on a
connection of its own, so a slow event or checkpoint never lets it lapse. When a
renewal finds another owner, or none succeeded for a whole TTL (Redis unreachable:
someone else may own the model by now), ``lost`` is set and the trainer steps back.
Correctness never rests on noticing in time: every checkpoint is fenced by the epoch
in the same transaction that writes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis

from model_store.leases import Holder, Leases, new_owner_id
from stream.backoff import Backoff

log = logging.getLogger(__name__)

STANDBY_POLL = 0.5
"""Seconds between a standby's attempts: a released lease is taken within this."""


class Ownership:
    """The lease on one model held by this trainer instance."""

    def __init__(
        self,
        leases: Leases,
        model: str,
        ttl: float,
        renew: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases, self.model, self.ttl = leases, model, ttl
        self.renew_every = renew if renew is not None else ttl / 3
        self.clock = clock
        self.owner = new_owner_id()
        self.epoch: int | None = None
        self.since: datetime | None = None
        self.lost = threading.Event()
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewed_at = 0.0

    def acquire(self, stop: threading.Event) -> bool:
        """Wait as a standby until the lease is ours (True) or ``stop`` is set (False)."""
        waiting_for: str | None = None
        backoff = Backoff(first=1.0, longest=2.0)  # short: the standby must take over quickly
        while not stop.is_set():
            try:
                if self.try_acquire():
                    return True
            except redis.RedisError as exc:
                delay = backoff.next()
                log.warning(
                    "%s: Redis not reachable for the lease (%s); retrying in %.1fs", self.model, exc, delay
                )
                backoff.wait(stop, delay)
                continue
            backoff.reset()
            holder = self._holder()
            if holder is not None and holder.owner != waiting_for:
                waiting_for = holder.owner
                log.info(
                    "%s: standby; owned by %s (pid %d) since %s, epoch %d",
                    self.model,
                    holder.host,
                    holder.pid,
                    holder.since.isoformat(timespec="seconds"),
                    holder.epoch,
                )
            stop.wait(STANDBY_POLL)
        return False

    def try_acquire(self) -> bool:
        """Take the lease if it is free (and start renewing it); Redis errors are raised."""
        epoch = self.leases.acquire(self.model, self.owner, self.ttl)
        if epoch is None:
            return False
        self.epoch, self.since, self._renewed_at = epoch, datetime.now(UTC), self.clock()
        self.lost.clear()
        self._start_renewing()
        log.info("%s: lease acquired (epoch %d); this process owns the model", self.model, epoch)
        return True

    def _holder(self) -> Holder | None:
        try:
            return self.leases.holder(self.model)
        except redis.RedisError:
            return None

    def _start_renewing(self) -> None:
        self._stop_renewing = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(self._stop_renewing,), name=f"lease {self.model}", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self, stop: threading.Event) -> None:
        held = Holder(
            owner=self.owner,
            host=self.owner.split(":")[0],
            pid=int(self.owner.split(":")[1]),
            since=self.since or datetime.now(UTC),
            epoch=self.epoch or 0,
        )
        while not stop.wait(self.renew_every):
            try:
                still = self.leases.renew(self.model, self.owner, held.epoch, self.ttl, held)
            except redis.RedisError as exc:
                if self.clock() - self._renewed_at < self.ttl:
                    log.warning("%s: lease not renewed (%s); retrying", self.model, exc)
                    continue
                self._lose(f"no renewal for {self.ttl:g}s ({exc}); another trainer may own it now")
                return
            if not still:
                self._lose("the lease belongs to another trainer now (this one was paused or cut off)")
                return
            self._renewed_at = self.clock()

    def _lose(self, why: str) -> None:
        log.error("%s: lease lost (epoch %s): %s; stepping back to standby", self.model, self.epoch, why)
        self.lost.set()

    def fenced(self, why: str) -> None:
        """A checkpoint was refused by the epoch check: the lease is gone, whatever the renewer saw."""
        self._stop_renewing.set()
        self._lose(why)

    def release(self) -> None:
        """Stop renewing and give the lease up (a clean stop: the standby takes over at once)."""
        self._stop_renewing.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        if self.epoch is None or self.lost.is_set():
            return
        try:
            if self.leases.release(self.model, self.owner):
                log.info("%s: lease released (epoch %d)", self.model, self.epoch)
        except redis.RedisError as exc:  # it expires by itself within the TTL
            log.warning("%s: could not release the lease (%s); it expires in %gs", self.model, exc, self.ttl)
        self.epoch = None
