"""Resets: an operator asks (``streamlearn rollback --mode reset`` or the API), the trainer applies.

Only the trainer writes checkpoints, so a reset is a request in Redis
(``ModelKeys.reset_request``) that the trainer checks between poll batches. It
loads version N's learner state, keeps its current Kafka offsets, and publishes
at once a version whose parent is N; that publication removes the request in the
same transaction (``CheckpointStore.publish(applies_reset=...)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from model_store.snapshot import IncompatibleSnapshot, load_state
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, ResetRequest, StoreError
from stream.learner import Learner

log = logging.getLogger(__name__)


class ResetRequests:
    """Looks for a pending reset at most every ``interval`` seconds (one GET), and loads its state."""

    def __init__(
        self,
        spec: ModelSpec,
        store: CheckpointStore,
        signing_key: bytes | None,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.5,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.store = store
        self.signing_key = signing_key
        self.clock = clock
        self.interval = interval
        self._next_check = 0.0
        self._loaded: str | None = None  # id of the request whose state the trainer already holds

    def poll(self) -> ResetRequest | None:
        """A request not applied yet, or None (also when Redis is away: it is checked again later)."""
        now = self.clock()
        if now < self._next_check:
            return None
        self._next_check = now + self.interval
        try:
            request = self.store.reset_request(self.name)
        except redis.RedisError as exc:
            log.warning("%s: cannot check for a reset request: %s", self.name, exc)
            return None
        if request is None or request.id == self._loaded:
            return None
        return request

    def load(self, request: ResetRequest) -> tuple[Learner, dict] | None:
        """Version N's learner (model, metrics, events learned, monitors) and its whole state
        (challengers too); None, and the request dropped, when that version cannot be loaded."""
        try:
            meta, blob, training = self.store.fetch_parts(self.name, request.version)
            state = load_state(meta, blob, self.signing_key, training)
            learner = Learner.from_state(state, self.spec)
        except (StoreError, IncompatibleSnapshot) as exc:
            log.error("%s: cannot reset to v%d, request dropped: %s", self.name, request.version, exc)
            self._drop(request, str(exc))
            return None
        except redis.RedisError as exc:
            log.warning("%s: cannot load v%d for a reset yet: %s", self.name, request.version, exc)
            return None
        self._loaded = request.id
        log.info(
            "%s: reset to v%d (%d learned); current offsets kept", self.name, meta.version, meta.n_learned
        )
        return learner, state

    def _drop(self, request: ResetRequest, why: str) -> None:
        try:
            self.store.drop_reset(self.name, request, why)
        except redis.RedisError as exc:  # checked again later
            log.warning("%s: cannot drop the reset request: %s", self.name, exc)
