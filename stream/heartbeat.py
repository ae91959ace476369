"""Who trains a model, told through Redis (``ModelKeys.trainer``).

A trainer and ``streamlearn rebuild`` each hold a claim on the model that they refresh
every ``EVERY`` seconds with a TTL of ``TTL``: a claim whose holder died goes away by
itself. It is a signal, not a lease: two trainers of one model overwrite each other's
claim (the one that refreshed last shows). What it does guarantee is between a rebuild
and the trainers:

- a rebuild starts only while nobody holds a claim, and publishes its version only
  while its own claim still holds (``CheckpointStore.publish(claim=...)``, one
  transaction);
- a trainer starting while a rebuild holds the claim waits for it to end, then loads
  the newest checkpoint (the rebuilt one);
- a running trainer refreshes by overwriting whatever holds the key, so a rebuild
  that started while the trainer stalled past the TTL loses its claim and publishes
  nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import redis

from model_store.store import CheckpointStore, ClaimLost, TrainingClaim

log = logging.getLogger(__name__)

TTL = 15.0
"""Seconds a claim lives without being refreshed."""
EVERY = 3.0
"""Seconds between two refreshes."""


class Heartbeat:
    """One process's claim on one model: ``claim`` it, ``beat`` often, ``release`` at the end."""

    def __init__(
        self,
        store: CheckpointStore,
        model: str,
        role: Literal["train", "rebuild"],
        ttl: float = TTL,
        every: float = EVERY,
    ) -> None:
        self.store = store
        self.model = model
        self.role = role
        self.ttl = ttl
        self.every = every
        self.claim = TrainingClaim(role=role)
        self.held = False
        self._next = 0.0
        self._warned = 0.0

    def take(self) -> TrainingClaim | None:
        """Claim the model; None when claimed, else the claim that holds it (a trainer yields
        only to a rebuild, a rebuild to anybody). Redis errors are raised."""
        holder = self.store.claim_training(
            self.model, self.claim, self.ttl, over=("train",) if self.role == "train" else ()
        )
        if holder is None:
            self.held = True
            self._next = time.monotonic() + self.every
        return holder

    def beat(self) -> None:
        """Refresh the claim when due. A trainer's overwrites any other; a rebuild's raises
        ClaimLost when another holds the model now. A Redis error is logged (at most every
        30 s) and the claim left to expire: learning does not wait for Redis."""
        if not self.held:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        over = ("train", "rebuild") if self.role == "train" else ()
        try:
            holder = self.store.claim_training(self.model, self.claim, self.ttl, over)
        except redis.RedisError as exc:
            if now - self._warned > 30:
                log.warning("%s: cannot refresh the training claim (%s)", self.model, exc)
                self._warned = now
            return
        if holder is not None:
            self.held = False
            raise ClaimLost(self.model, holder)

    def release(self) -> None:
        """Remove the claim if it is still ours (else, or if Redis is away, it expires)."""
        if not self.held:
            return
        self.held = False
        try:
            self.store.release_training(self.model, self.claim)
        except redis.RedisError as exc:
            log.warning("%s: cannot remove the training claim (%s); it expires by itself", self.model, exc)
