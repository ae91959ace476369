"""Versioned checkpoints in Redis (key layout in docs/architecture.md).

Only the trainer writes versions; the API reads them. A version is published in
one MULTI/EXEC transaction (serving artefact, training state, metadata, index,
``latest``, retention, announcement), so no reader ever sees metadata without its
parts or half a version.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any, TypeVar

import orjson
import redis
from pydantic import BaseModel, Field

from model_store.errors import ModelStoreError
from model_store.keys import ModelKeys, models_index
from model_store.leases import Fenced, Holder, Leases, TrainerStatus
from model_store.redis_client import TIMEOUTS, redis_client
from model_store.settings import Settings
from model_store.snapshot import SnapshotMeta, sign

T = TypeVar("T")

AUDIT_MAXLEN = 1_000

log = logging.getLogger(__name__)


class StoreError(ModelStoreError, RuntimeError):
    """Root of the store's errors."""


class VersionNotFound(StoreError):
    """The version was never published or retention removed it."""

    def __init__(self, model: str, version: int, existing: list[int]) -> None:
        self.model, self.version, self.existing = model, version, existing
        super().__init__(f"model '{model}' has no version {version}; retained versions: {existing or 'none'}")


class StoreFull(StoreError):
    """Redis refused a version for memory (maxmemory, noeviction) and retention, run on its
    own, could free nothing."""

    def __init__(self, model: str, needed: int, retained: list[int], protected: list[int], why: str) -> None:
        self.model, self.needed, self.retained, self.protected = model, needed, retained, protected
        super().__init__(
            f"model '{model}': Redis is out of memory ({why}) and retention frees nothing for a "
            f"{needed}-byte checkpoint: retained versions {retained or 'none'}, protected (pinned, "
            f"promoted, tagged or a reset's) {protected or 'none'}. Lower checkpoint.keep or "
            "checkpoint.max_bytes, unpin or untag versions, or give Redis more maxmemory; "
            "checkpoints are retried meanwhile"
        )


@dataclass(frozen=True)
class MemoryState:
    """Redis's memory as INFO reports it, and whether a version of ``needed`` bytes fits."""

    used: int
    maxmemory: int  # 0: no limit
    policy: str
    needed: int = 0

    @property
    def full(self) -> bool:
        """Writes are refused rather than evicting, and the next version would not fit. It
        needs its size twice while it is written: the transaction's commands wait in the
        client's query buffer, which Redis counts as used, until EXEC stores them."""
        return (
            self.maxmemory > 0
            and self.policy == "noeviction"
            and self.used + 2 * self.needed > self.maxmemory
        )

    def __str__(self) -> str:
        limit = f"of maxmemory {self.maxmemory}" if self.maxmemory else "(no maxmemory)"
        fits = "; the next checkpoint does not fit" if self.full else ""
        return f"Redis uses {self.used} bytes {limit}, policy {self.policy}{fits}"


@dataclass(frozen=True)
class Retention:
    """What retention does once a version exists: the versions it drops, the sizes it records
    for versions written before sizes were, what stays, and the versions nothing may drop."""

    doomed: list[int]
    backfill: dict[str, int]
    retained_bytes: int
    protected: list[int]


@dataclass(frozen=True)
class ServedPointer:
    """Which version a replica should serve, and why: the pin, else the promoted one, else the newest."""

    version: int | None
    pinned: bool
    latest: int | None
    promoted: int | None = None


class OperatorRequest(BaseModel):
    """A request the trainer applies (only it writes checkpoints): who asked, when, why, and
    an id that tells it from a newer request replacing it."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    reason: str | None = None
    by: str = "cli"
    requested_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class ResetRequest(OperatorRequest):
    """An operator's request that the trainer continue learning from ``version``."""

    version: int


class PromoteRequest(OperatorRequest):
    """An operator's request that the trainer make ``challenger`` the champion."""

    challenger: str


class CheckpointStore:
    """Read and write one deployment's checkpoints (sync client; the API calls it off-loop)."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "streamlearn",
        connect: Callable[[], redis.Redis] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self._connect = connect

    @classmethod
    def from_url(cls, url: str, prefix: str = "streamlearn") -> CheckpointStore:
        def connect() -> redis.Redis:
            return redis.Redis.from_url(url, **TIMEOUTS)

        return cls(connect(), prefix, connect)

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointStore:
        """The store of a deployment: its Redis (one URL, or through Sentinel) and key prefix."""
        return cls(redis_client(settings), settings.key_prefix, partial(redis_client, settings))

    def with_own_pool(self) -> CheckpointStore:
        """The same store over a connection pool of its own (a store made from a bare client,
        without ``connect``, returns itself).

        The trainer writes checkpoints through one, from its thread and from the children it
        forks: a forked child inherits every lock as it was at the fork, and a pool that other
        threads use (``train --all`` shares one store) may be locked by one of them then."""
        if self._connect is None:
            return self
        return CheckpointStore(self._connect(), self.prefix, self._connect)

    def keys(self, model: str) -> ModelKeys:
        return ModelKeys(self.prefix, model)

    @cached_property
    def leases(self) -> Leases:
        """Which trainer owns each model (one writer per model)."""
        return Leases(self.client, self.prefix)

    def owner(self, model: str) -> Holder | None:
        """The trainer holding the model's lease now, or None when nobody trains it."""
        return self.leases.holder(model)

    def trainer_status(self, model: str) -> TrainerStatus | None:
        """The owner with its lag and newest checkpoint; None when nobody trains the model."""
        holder = self.owner(model)
        if holder is None:
            return None
        points = self.metric_points(model, 1)
        lag = sum(points[-1][1].get("lag", {}).values()) if points else None
        latest = self.latest_version(model)
        created = self.meta(model, latest).created_at if latest is not None else None
        return TrainerStatus(
            **holder.model_dump(), lag=lag, last_checkpoint=latest, last_checkpoint_at=created
        )

    # -- writing (trainer only) ------------------------------------------------

    def publish(
        self,
        meta: SnapshotMeta,
        blob: bytes,
        keep: int,
        signing_key: bytes | None = None,
        promote: bool = True,
        hold_reason: str | None = None,
        applies_reset: ResetRequest | None = None,
        epoch: int | None = None,
        training: bytes | None = None,
        max_bytes: int | None = None,
    ) -> SnapshotMeta:
        """Store a new version atomically; return its metadata, version and signature set.

        ``blob`` is the serving artefact and ``training`` the training state, two values
        written in the one transaction, each with its digest in the signed metadata
        (``training`` None writes the one-blob form snapshots had before the split).
        Retention keeps the newest ``keep`` versions and, with ``max_bytes``, drops the
        oldest until the retained versions (this one included) fit (``_retention``).
        When Redis refuses the writes for memory (maxmemory with noeviction), retention runs
        on its own (``free``) and the version is retried while that frees something; when
        it frees nothing, ``StoreFull`` says what is retained and protected.

        The version number is allocated first (INCR, never reused even if this call
        fails later), then the metadata is signed with it, then everything is
        written in one transaction. ``promote`` moves the ``promoted`` pointer
        (what replicas serve when nothing is pinned); otherwise the version is
        recorded as held, with ``hold_reason``. The transaction WATCHes the
        pointers retention protects, so a pin or tag set meanwhile is honoured.
        A version that ``applies_reset`` removes that request in the same
        transaction, so a restarted trainer never applies a reset twice. With ``epoch``
        (the writer's lease, model_store/leases.py), the transaction WATCHes the model's
        fencing epoch and raises ``Fenced`` instead of writing when a newer lease was granted.
        """
        needed = len(blob) + len(training or b"")
        while True:
            try:
                return self._publish(
                    meta,
                    blob,
                    keep,
                    signing_key,
                    promote,
                    hold_reason,
                    applies_reset,
                    epoch,
                    training,
                    max_bytes,
                )
            except redis.exceptions.OutOfMemoryError as exc:
                # The SETs were refused; DEL is not: make room by retention alone, then retry.
                plan = self.free(meta.model, needed, keep, promote, max_bytes, epoch)
                if not plan.doomed:
                    retained = self.version_numbers(meta.model)
                    raise StoreFull(meta.model, needed, retained, plan.protected, str(exc)) from exc
                log.warning(
                    "%s: Redis refused a checkpoint for memory; retention freed %s, retrying",
                    meta.model,
                    plan.doomed,
                )

    def free(
        self,
        model: str,
        needed: int,
        keep: int,
        promote: bool = True,
        max_bytes: int | None = None,
        epoch: int | None = None,
    ) -> Retention:
        """Retention on its own, as if a version of ``needed`` bytes were being published
        (count and byte budget): only deletes, which Redis allows at its maxmemory. Returns
        what it dropped (nothing when everything retained is needed or protected)."""
        k = self.keys(model)
        plan = Retention([], {}, 0, [])

        def body(tx: redis.client.Pipeline) -> None:
            nonlocal plan
            if epoch is not None:
                self._check_epoch(model, tx.get(k.epoch), epoch)
            upcoming = int(tx.get(k.next_version) or 0) + 1
            plan = self._retention(tx, model, upcoming, needed, keep, promote, max_bytes)
            tx.multi()
            self._drop(tx, k, plan.doomed)

        self._transaction(body, k.versions, k.pinned, k.tags, k.promoted, k.reset_request, k.epoch)
        return plan

    def memory(self, model: str | None = None) -> MemoryState:
        """Redis's memory now; with ``model``, whether its next version (as large as its
        newest) would fit."""
        try:
            info = self.client.info("memory")
        except redis.ResponseError:  # INFO not allowed to this user: nothing known
            return MemoryState(0, 0, "unknown")
        needed = 0
        if model is not None and (latest := self.latest_version(model)) is not None:
            with suppress(VersionNotFound):
                needed = self.meta(model, latest).total_bytes
        return MemoryState(
            int(info.get("used_memory", 0)),
            int(info.get("maxmemory", 0)),
            str(info.get("maxmemory_policy", "")),
            needed,
        )

    def _publish(
        self,
        meta: SnapshotMeta,
        blob: bytes,
        keep: int,
        signing_key: bytes | None,
        promote: bool,
        hold_reason: str | None,
        applies_reset: ResetRequest | None,
        epoch: int | None,
        training: bytes | None,
        max_bytes: int | None,
    ) -> SnapshotMeta:
        k = self.keys(meta.model)
        if epoch is not None:
            self._check_epoch(meta.model, self.client.get(k.epoch), epoch)  # early: keep numbers tidy
        version = int(self.client.incr(k.next_version))
        meta = sign(meta.model_copy(update={"version": version}), blob, signing_key, training)
        announcement = orjson.dumps({"event": "version", "version": version, "promoted": promote})

        def write(tx: redis.client.Pipeline) -> None:
            if epoch is not None:
                self._check_epoch(meta.model, tx.get(k.epoch), epoch)  # authoritative: epoch WATCHed
            plan = self._retention(tx, meta.model, version, meta.total_bytes, keep, promote, max_bytes)
            pending, latest_before, promoted_before = tx.mget(k.reset_request, k.latest, k.promoted)
            finishes_reset = (
                applies_reset is not None
                and pending is not None
                and ResetRequest.model_validate_json(pending).id == applies_reset.id
            )
            tx.multi()
            tx.set(k.blob(version), blob)
            if training is not None:
                tx.set(k.training(version), training)
            tx.set(k.meta(version), meta.model_dump_json())
            tx.zadd(k.versions, {str(version): version})
            tx.hset(k.sizes, mapping={str(version): meta.total_bytes, **plan.backfill})
            tx.set(k.latest, version)
            if promote:
                tx.set(k.promoted, version)
            else:
                tx.hset(k.held, str(version), hold_reason or "held by the promotion gate")
                if promoted_before is None and latest_before is not None:
                    tx.set(k.promoted, latest_before)  # a store from before the gate: keep serving that
            tx.sadd(models_index(self.prefix), meta.model)
            self._drop(tx, k, plan.doomed)
            if finishes_reset:
                tx.delete(k.reset_request)
                target = applies_reset.version
                self._audit(tx, meta.model, "reset applied", version=target, applied_as=version)
            tx.publish(k.channel, announcement)

        self._transaction(write, k.pinned, k.tags, k.promoted, k.reset_request, k.epoch)
        return meta

    @staticmethod
    def _check_epoch(model: str, current: bytes | None, epoch: int) -> None:
        if current is None or int(current) != epoch:
            raise Fenced(model, epoch, None if current is None else int(current))

    def _transaction(self, body: Callable[[redis.client.Pipeline], None], *watched: str) -> None:
        """Run ``body`` (reads, then MULTI, then writes) until no watched key changed meanwhile."""
        with self.client.pipeline(transaction=True) as tx:
            while True:
                try:
                    tx.watch(*watched)
                    body(tx)
                    tx.execute()
                    return
                except redis.WatchError:
                    tx.reset()

    @staticmethod
    def _drop(tx: redis.client.Pipeline, k: ModelKeys, versions: list[int]) -> None:
        for old in versions:
            tx.delete(*k.version_keys(old))
            tx.zrem(k.versions, str(old))
            tx.hdel(k.held, str(old))
            tx.hdel(k.sizes, str(old))

    def _retention(
        self,
        reader: Any,
        model: str,
        new_version: int,
        new_bytes: int,
        keep: int,
        promote: bool,
        max_bytes: int | None = None,
    ) -> Retention:
        """What retention drops once ``new_version`` (``new_bytes``) exists: versions beyond
        the newest ``keep``, then, while the rest is over ``max_bytes``, the oldest first.
        Never the new version, the pinned, the promoted (unless ``new_version`` replaces it),
        the tagged ones nor one a pending reset names."""
        k = self.keys(model)
        existing = [int(v) for v in reader.zrange(k.versions, 0, -1)]
        pinned, promoted, reset = reader.mget(k.pinned, k.promoted, k.reset_request)
        always = {new_version} | {int(v) for v in reader.hkeys(k.tags)}
        always |= {int(v) for v in (pinned, None if promote else promoted) if v is not None}
        if not promote and promoted is None and existing:
            always.add(max(existing))  # becomes the promoted one (a store from before the gate)
        if reset is not None:
            always.add(ResetRequest.model_validate_json(reset).version)
        newest = set(sorted([*existing, new_version], reverse=True)[:keep])
        doomed = [v for v in existing if v not in newest | always]
        sizes, backfill = self._sizes(reader, k, existing)
        if max_bytes is not None:
            total = new_bytes + sum(sizes[v] for v in existing if v not in doomed)
            for v in existing:  # oldest first
                if total <= max_bytes:
                    break
                if v not in always and v not in doomed:
                    doomed.append(v)
                    total -= sizes[v]
        kept = [v for v in existing if v not in doomed]
        return Retention(
            doomed=sorted(doomed),
            backfill={str(v): n for v, n in backfill.items() if v in kept},
            retained_bytes=new_bytes + sum(sizes[v] for v in kept),
            protected=sorted(v for v in kept if v in always),
        )

    @staticmethod
    def _sizes(reader: Any, k: ModelKeys, versions: list[int]) -> tuple[dict[int, int], dict[int, int]]:
        """Bytes each version holds (both parts), and those measured now because the version
        was written before sizes were recorded (to record them)."""
        recorded = {int(v): int(n) for v, n in reader.hgetall(k.sizes).items()}
        missing = [v for v in versions if v not in recorded]
        measured = {v: int(reader.strlen(k.blob(v))) + int(reader.strlen(k.training(v))) for v in missing}
        return {**recorded, **measured}, measured

    def retained_bytes(self, model: str) -> int:
        """Bytes the model's retained versions hold in Redis (both parts), as recorded."""
        return sum(int(n) for n in self.client.hvals(self.keys(model).sizes))

    def append_metric_point(self, model: str, point: dict[str, Any], maxlen: int = 10_000) -> None:
        """Add a point to the model's capped metrics stream."""
        self.client.xadd(
            self.keys(model).metrics_stream,
            {"json": orjson.dumps(point)},
            maxlen=maxlen,
            approximate=True,
        )

    # -- metric points (trainer writes, API reads) --------------------------------

    def metric_points(self, model: str, count: int = 300) -> list[tuple[str, dict[str, Any]]]:
        """The newest ``count`` metric points, oldest first, with their stream ids."""
        raw = self.client.xrevrange(self.keys(model).metrics_stream, count=count)
        return [(sid.decode(), orjson.loads(fields[b"json"])) for sid, fields in reversed(raw)]

    def last_metric_id(self, model: str) -> str:
        """Id of the newest metric point, or ``0-0`` when there is none: where to read on from."""
        raw = self.client.xrevrange(self.keys(model).metrics_stream, count=1)
        return raw[0][0].decode() if raw else "0-0"

    def metric_points_after(
        self, after: dict[str, str], block_ms: int = 1000, count: int = 500
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Points newer than ``after`` (model -> stream id) as (model, id, point), waiting up
        to ``block_ms`` for the first one."""
        if not after:
            return []
        streams = {self.keys(model).metrics_stream: sid for model, sid in after.items()}
        names = {self.keys(model).metrics_stream: model for model in after}
        reply = self.client.xread(streams, count=count, block=block_ms) or []
        return [
            (names[key.decode()], sid.decode(), orjson.loads(fields[b"json"]))
            for key, entries in reply
            for sid, fields in entries
        ]

    # -- pointers --------------------------------------------------------------

    def _if_exists(self, model: str, version: int, write: Callable[[redis.client.Pipeline], None]) -> None:
        """Run ``write`` in a transaction only while ``version`` is retained (WATCHing the index,
        so retention cannot remove it between the check and the write)."""
        k = self.keys(model)

        def body(tx: redis.client.Pipeline) -> None:
            if tx.zscore(k.versions, str(version)) is None:
                raise VersionNotFound(model, version, [int(v) for v in tx.zrange(k.versions, 0, -1)])
            tx.multi()
            write(tx)

        self._transaction(body, k.versions)

    def _audit(self, tx: redis.client.Pipeline, model: str, action: str, **fields: Any) -> None:
        entry = {"action": action, "at": time.time(), **{k: v for k, v in fields.items() if v is not None}}
        tx.xadd(self.keys(model).audit, {"json": orjson.dumps(entry)}, maxlen=AUDIT_MAXLEN, approximate=True)

    def pin(self, model: str, version: int, reason: str | None = None, by: str = "cli") -> None:
        """Serve ``version`` on every replica until unpinned; raise VersionNotFound if it is not retained."""
        k = self.keys(model)

        def write(tx: redis.client.Pipeline) -> None:
            tx.set(k.pinned, version)
            if reason:
                tx.set(k.pin_reason, reason)
            else:
                tx.delete(k.pin_reason)
            self._audit(tx, model, "pin", version=version, reason=reason, by=by)
            tx.publish(k.channel, orjson.dumps({"event": "pin", "version": version}))

        self._if_exists(model, version, write)

    def unpin(self, model: str, by: str = "cli") -> int | None:
        """Let replicas follow the promoted version again; return the version that was pinned."""
        k = self.keys(model)
        with self.client.pipeline(transaction=True) as tx:
            tx.get(k.pinned)
            tx.delete(k.pinned, k.pin_reason)
            self._audit(tx, model, "unpin", by=by)
            tx.publish(k.channel, orjson.dumps({"event": "unpin"}))
            was = tx.execute()[0]
        return int(was) if was is not None else None

    def pinned(self, model: str) -> int | None:
        raw = self.client.get(self.keys(model).pinned)
        return int(raw) if raw is not None else None

    def pin_reason(self, model: str) -> str | None:
        raw = self.client.get(self.keys(model).pin_reason)
        return raw.decode() if raw is not None else None

    def promoted(self, model: str) -> int | None:
        raw = self.client.get(self.keys(model).promoted)
        return int(raw) if raw is not None else None

    def held(self, model: str) -> dict[int, str]:
        """Versions the promotion gate held back, with the reason."""
        raw = self.client.hgetall(self.keys(model).held)
        return {int(v): reason.decode() for v, reason in raw.items()}

    def tags(self, model: str) -> dict[int, str]:
        raw = self.client.hgetall(self.keys(model).tags)
        return {int(v): label.decode() for v, label in raw.items()}

    def tag(self, model: str, version: int, label: str, by: str = "cli") -> None:
        """Label a retained version; tagged versions survive retention."""
        k = self.keys(model)

        def write(tx: redis.client.Pipeline) -> None:
            tx.hset(k.tags, str(version), label)
            self._audit(tx, model, "tag", version=version, label=label, by=by)

        self._if_exists(model, version, write)

    def untag(self, model: str, version: int, by: str = "cli") -> bool:
        """Remove a version's label (retention may then drop it); False if it had none."""
        k = self.keys(model)
        with self.client.pipeline(transaction=True) as tx:
            tx.hdel(k.tags, str(version))
            self._audit(tx, model, "untag", version=version, by=by)
            removed = tx.execute()[0]
        return bool(removed)

    # -- resets (requested here, applied by the trainer) ------------------------

    def request_reset(
        self, model: str, version: int, reason: str | None = None, by: str = "cli"
    ) -> ResetRequest:
        """Ask the trainer to continue learning from ``version`` (replacing any pending request)."""
        k = self.keys(model)
        request = ResetRequest(version=version, reason=reason, by=by)

        def write(tx: redis.client.Pipeline) -> None:
            tx.set(k.reset_request, request.model_dump_json())
            self._audit(tx, model, "reset", version=version, reason=reason, by=by, request=request.id)
            tx.publish(k.channel, orjson.dumps({"event": "reset", "version": version}))

        self._if_exists(model, version, write)
        return request

    def reset_request(self, model: str) -> ResetRequest | None:
        raw = self.client.get(self.keys(model).reset_request)
        return ResetRequest.model_validate_json(raw) if raw is not None else None

    def request_promotion(
        self, model: str, challenger: str, reason: str | None = None, by: str = "cli"
    ) -> PromoteRequest:
        """Ask the trainer to make ``challenger`` the champion from its next version on."""
        k = self.keys(model)
        request = PromoteRequest(challenger=challenger, reason=reason, by=by)
        with self.client.pipeline(transaction=True) as tx:
            tx.set(k.promote_request, request.model_dump_json())
            self._audit(tx, model, "promote", challenger=challenger, reason=reason, by=by, request=request.id)
            tx.publish(k.channel, orjson.dumps({"event": "promote", "challenger": challenger}))
            tx.execute()
        return request

    def promote_request(self, model: str) -> PromoteRequest | None:
        raw = self.client.get(self.keys(model).promote_request)
        return PromoteRequest.model_validate_json(raw) if raw is not None else None

    def finish_promotion(
        self, model: str, request: PromoteRequest, applied_as: int | None = None, why: str | None = None
    ) -> bool:
        """Remove the request once applied (as version ``applied_as``) or refused (``why``), unless a
        newer one replaced it; the audit stream records which. True if removed."""
        if why is None:
            audit = {
                "action": "promotion applied",
                "challenger": request.challenger,
                "applied_as": applied_as,
            }
        else:
            audit = {"action": "promotion refused", "challenger": request.challenger, "reason": why}
        return self._remove_request(model, self.keys(model).promote_request, request.id, **audit)

    def drop_reset(self, model: str, request: ResetRequest, why: str) -> bool:
        """Remove a request that cannot be applied (not a newer one that replaced it); True if removed."""
        audit = {"action": "reset failed", "version": request.version, "reason": why}
        return self._remove_request(model, self.keys(model).reset_request, request.id, **audit)

    def _remove_request(self, model: str, key: str, request_id: str, action: str, **audit: Any) -> bool:
        """Delete the request at ``key`` if it is still ``request_id`` (not a newer one that replaced
        it), with an audit entry, in one transaction; True if removed."""
        removed = False

        def body(tx: redis.client.Pipeline) -> None:
            nonlocal removed
            raw = tx.get(key)
            removed = raw is not None and orjson.loads(raw).get("id") == request_id
            tx.multi()
            if removed:
                tx.delete(key)
                self._audit(tx, model, action, **audit)

        self._transaction(body, key)
        return removed

    def audit_log(self, model: str, count: int = 20) -> list[dict[str, Any]]:
        """The newest pointer changes first: pins, unpins, resets, tags, with who and why."""
        entries = self.client.xrevrange(self.keys(model).audit, count=count)
        return [orjson.loads(fields[b"json"]) for _, fields in entries]

    def served_pointer(self, model: str) -> ServedPointer:
        """The version replicas should serve: the pin if set, else the promoted one, else the newest
        (a store written before the promotion gate existed has no ``promoted`` pointer)."""
        k = self.keys(model)
        pinned, promoted, latest = (
            int(v) if v is not None else None for v in self.client.mget(k.pinned, k.promoted, k.latest)
        )
        if pinned is not None:
            return ServedPointer(pinned, True, latest, promoted)
        return ServedPointer(promoted if promoted is not None else latest, False, latest, promoted)

    # -- reading ---------------------------------------------------------------

    def version_numbers(self, model: str) -> list[int]:
        return [int(v) for v in self.client.zrange(self.keys(model).versions, 0, -1)]

    def latest_version(self, model: str) -> int | None:
        raw = self.client.get(self.keys(model).latest)
        return int(raw) if raw is not None else None

    def meta(self, model: str, version: int) -> SnapshotMeta:
        raw = self.client.get(self.keys(model).meta(version))
        if raw is None:
            raise VersionNotFound(model, version, self.version_numbers(model))
        return SnapshotMeta.model_validate_json(raw)

    def fetch(self, model: str, version: int) -> tuple[SnapshotMeta, bytes]:
        """Metadata and serving artefact of one version, read together (what a replica
        needs; the training state is not read)."""
        k = self.keys(model)
        raw_meta, blob = self.client.mget(k.meta(version), k.blob(version))
        if raw_meta is None or blob is None:
            raise VersionNotFound(model, version, self.version_numbers(model))
        return SnapshotMeta.model_validate_json(raw_meta), blob

    def fetch_parts(self, model: str, version: int) -> tuple[SnapshotMeta, bytes, bytes | None]:
        """Metadata, serving artefact and training state of one version, read together (what
        the trainer needs); the training state is None for a snapshot in the one-blob form."""
        k = self.keys(model)
        raw_meta, blob, training = self.client.mget(k.meta(version), k.blob(version), k.training(version))
        if raw_meta is None or blob is None:
            raise VersionNotFound(model, version, self.version_numbers(model))
        meta = SnapshotMeta.model_validate_json(raw_meta)
        if meta.is_split and training is None:
            raise VersionNotFound(model, version, self.version_numbers(model))
        return meta, blob, training

    def fetch_latest_parts(self, model: str) -> tuple[SnapshotMeta, bytes, bytes | None] | None:
        """Newest version's ``fetch_parts``, retrying if retention removes it meanwhile."""
        return self._fetch_newest(model, self.fetch_parts)

    def fetch_latest(self, model: str) -> tuple[SnapshotMeta, bytes] | None:
        """Newest version, retrying if retention removes it between the two reads."""
        return self._fetch_newest(model, self.fetch)

    def _fetch_newest(self, model: str, fetch: Callable[[str, int], T]) -> T | None:
        """``fetch(model, newest version)``; None without versions. Retention may remove the
        newest between reading its number and its parts: then the new newest is read."""
        for _ in range(5):
            version = self.latest_version(model)
            if version is None:
                return None
            try:
                return fetch(model, version)
            except VersionNotFound:
                continue
        raise StoreError(f"model '{model}': latest version keeps disappearing")

    def list_versions(self, model: str) -> list[SnapshotMeta]:
        """Metadata of every retained version, oldest first."""
        k = self.keys(model)
        numbers = self.version_numbers(model)
        if not numbers:
            return []
        raws = self.client.mget([k.meta(v) for v in numbers])
        return [SnapshotMeta.model_validate_json(r) for r in raws if r is not None]
