"""Versioned checkpoints in Redis (key layout in docs/architecture.md).

Only the trainer writes versions; the API reads them. A version is published in
one MULTI/EXEC transaction (blob, metadata, index, ``latest``, retention,
announcement), so no reader ever sees metadata without its blob or half a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis

from model_store.keys import ModelKeys, models_index
from model_store.snapshot import SnapshotMeta, sign


class StoreError(RuntimeError):
    """Root of the store's errors."""


class VersionNotFound(StoreError):
    """The version was never published or retention removed it."""

    def __init__(self, model: str, version: int, existing: list[int]) -> None:
        self.model, self.version, self.existing = model, version, existing
        super().__init__(f"model '{model}' has no version {version}; retained versions: {existing or 'none'}")


@dataclass(frozen=True)
class ServedPointer:
    """Which version a replica should serve, and why."""

    version: int | None
    pinned: bool
    latest: int | None


class CheckpointStore:
    """Read and write one deployment's checkpoints (sync client; the API calls it off-loop)."""

    def __init__(self, client: redis.Redis, prefix: str = "streamlearn") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "streamlearn") -> CheckpointStore:
        return cls(redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5), prefix)

    def keys(self, model: str) -> ModelKeys:
        return ModelKeys(self.prefix, model)

    # -- writing (trainer only) ------------------------------------------------

    def publish(
        self, meta: SnapshotMeta, blob: bytes, keep: int, signing_key: bytes | None = None
    ) -> SnapshotMeta:
        """Store a new version atomically; return its metadata, version and signature set.

        The version number is allocated first (INCR, never reused even if this call
        fails later), then the metadata is signed with it, then everything is
        written in one transaction.
        """
        k = self.keys(meta.model)
        version = int(self.client.incr(k.next_version))
        meta = sign(meta.model_copy(update={"version": version}), blob, signing_key)
        doomed = self._expired_after(meta.model, version, keep)
        with self.client.pipeline(transaction=True) as tx:
            tx.set(k.blob(version), blob)
            tx.set(k.meta(version), meta.model_dump_json())
            tx.zadd(k.versions, {str(version): version})
            tx.set(k.latest, version)
            tx.sadd(models_index(self.prefix), meta.model)
            for old in doomed:
                tx.delete(k.blob(old), k.meta(old))
                tx.zrem(k.versions, str(old))
            tx.publish(k.channel, orjson.dumps({"event": "version", "version": version}))
            tx.execute()
        return meta

    def _expired_after(self, model: str, new_version: int, keep: int) -> list[int]:
        """Versions retention drops once ``new_version`` exists: beyond the newest
        ``keep``, except the pinned one and tagged ones."""
        k = self.keys(model)
        existing = [int(v) for v in self.client.zrange(k.versions, 0, -1)]
        newest = sorted([*existing, new_version], reverse=True)[:keep]
        protected = set(newest) | set(self.tags(model)) | {self.pinned(model)}
        return [v for v in existing if v not in protected]

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

    def pin(self, model: str, version: int) -> None:
        """Serve ``version`` on every replica until unpinned."""
        k = self.keys(model)
        if not self.client.exists(k.meta(version)):
            raise VersionNotFound(model, version, self.version_numbers(model))
        with self.client.pipeline(transaction=True) as tx:
            tx.set(k.pinned, version)
            tx.publish(k.channel, orjson.dumps({"event": "pin", "version": version}))
            tx.execute()

    def unpin(self, model: str) -> None:
        k = self.keys(model)
        with self.client.pipeline(transaction=True) as tx:
            tx.delete(k.pinned)
            tx.publish(k.channel, orjson.dumps({"event": "unpin"}))
            tx.execute()

    def pinned(self, model: str) -> int | None:
        raw = self.client.get(self.keys(model).pinned)
        return int(raw) if raw is not None else None

    def tags(self, model: str) -> dict[int, str]:
        raw = self.client.hgetall(self.keys(model).tags)
        return {int(v): label.decode() for v, label in raw.items()}

    def served_pointer(self, model: str) -> ServedPointer:
        """The version replicas should serve: the pin if set, else the newest."""
        k = self.keys(model)
        pinned, latest = self.client.mget(k.pinned, k.latest)
        latest_v = int(latest) if latest is not None else None
        if pinned is not None:
            return ServedPointer(int(pinned), True, latest_v)
        return ServedPointer(latest_v, False, latest_v)

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
        """Metadata and blob of one version, read together."""
        k = self.keys(model)
        raw_meta, blob = self.client.mget(k.meta(version), k.blob(version))
        if raw_meta is None or blob is None:
            raise VersionNotFound(model, version, self.version_numbers(model))
        return SnapshotMeta.model_validate_json(raw_meta), blob

    def fetch_latest(self, model: str) -> tuple[SnapshotMeta, bytes] | None:
        """Newest version, retrying if retention removes it between the two reads."""
        for _ in range(5):
            version = self.latest_version(model)
            if version is None:
                return None
            try:
                return self.fetch(model, version)
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
