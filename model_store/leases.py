"""One writer per model: a lease in Redis with a fencing epoch, checked where versions are written.

A trainer owns a model while it holds the model's lease, a key with a TTL that it
renews. Every grant INCRs the model's epoch, and every checkpoint transaction
compares the writer's epoch with it (``CheckpointStore.publish``), so a trainer
that lost the lease (paused or cut off past the TTL) has its write refused even if
it has not noticed yet. Redis scripts make each step atomic; nothing here is a
consensus of its own: Redis is the single arbiter, as it already is of versions.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime

import orjson
import redis
from pydantic import BaseModel

from model_store.errors import ModelStoreError
from model_store.keys import ModelKeys, fleet_members

# KEYS: lease, epoch. ARGV: owner, ttl ms, holder JSON (without epoch).
# The lease's holder renews it; anyone else gets it once it is gone, with the next epoch.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  local holder = cjson.decode(current)
  if holder.owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return holder.epoch
  end
  return -1
end
local epoch = redis.call('INCR', KEYS[2])
local holder = cjson.decode(ARGV[3])
holder.epoch = epoch
redis.call('SET', KEYS[1], cjson.encode(holder), 'PX', ARGV[2])
return epoch
"""

# KEYS: lease, epoch. ARGV: owner, ttl ms, epoch, holder JSON (with epoch).
# 1 while the caller still holds it. A lease that expired while nobody else was granted
# one (Redis was away, or the holder paused) is taken back: the epoch proves no other
# writer existed since.
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current then
  local holder = cjson.decode(current)
  if holder.owner == ARGV[1] and tonumber(holder.epoch) == tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
  end
  return 0
end
if tonumber(redis.call('GET', KEYS[2]) or '0') == tonumber(ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease. ARGV: owner.
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).owner == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class Holder(BaseModel):
    """Who owns a model: shown by ``streamlearn status`` and ``GET /models/{name}``."""

    owner: str
    host: str
    pid: int
    since: datetime
    epoch: int = 0


class TrainerStatus(Holder):
    """The owner of a model with how far it is: ``GET /models/{name}``'s ``trainer`` and
    ``streamlearn status``."""

    lag: int | None = None  # records of the topic not learned yet, from the trainer's newest metric point
    last_checkpoint: int | None = None  # newest version
    last_checkpoint_at: datetime | None = None


class Fenced(ModelStoreError, RuntimeError):
    """A write by a trainer whose lease was granted to another since (a newer epoch)."""

    def __init__(self, model: str, epoch: int, current: int | None) -> None:
        self.model, self.epoch, self.current = model, epoch, current
        super().__init__(
            f"model '{model}': this trainer's lease (epoch {epoch}) was granted to another "
            f"trainer since (epoch {current}); its write is refused"
        )


def new_owner_id() -> str:
    """Unique per trainer instance: host, pid and a random part (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """The lease of each model under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def _keys(self, model: str) -> ModelKeys:
        return ModelKeys(self.prefix, model)

    def acquire(self, model: str, owner: str, ttl: float) -> int | None:
        """The epoch of the caller's lease (a new one, or its own renewed); None while another holds it."""
        k = self._keys(model)
        host, pid = owner.split(":")[0], os.getpid()
        holder = {"owner": owner, "host": host, "pid": pid, "since": datetime.now(UTC).isoformat()}
        args = [owner, int(ttl * 1000), orjson.dumps(holder)]
        epoch = int(self._acquire(keys=[k.lease, k.epoch], args=args))
        return None if epoch < 0 else epoch

    def renew(self, model: str, owner: str, epoch: int, ttl: float, holder: Holder) -> bool:
        """Extend the caller's lease; False once it belongs to someone else."""
        k = self._keys(model)
        args = [owner, int(ttl * 1000), epoch, holder.model_dump_json()]
        return bool(self._renew(keys=[k.lease, k.epoch], args=args))

    def release(self, model: str, owner: str) -> bool:
        """Give the lease up at once (a clean stop), so a standby need not wait for the TTL."""
        return bool(self._release(keys=[self._keys(model).lease], args=[owner]))

    def holder(self, model: str) -> Holder | None:
        """Who holds the model's lease now, if anyone."""
        raw = self.client.get(self._keys(model).lease)
        return Holder.model_validate_json(raw) if raw is not None else None


# KEYS: members. ARGV: member, ttl ms (0: leave). Returns the live members after the change.
_MEMBER = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class Members:
    """The live ``train --all`` processes of a deployment, counted by their heartbeats
    (expiry times on Redis's clock, so the machines' clocks do not matter)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.key = fleet_members(prefix)
        self._member = client.register_script(_MEMBER)

    def beat(self, member: str, ttl: float) -> list[str]:
        """Renew ``member`` for ``ttl`` seconds; the live members, itself included."""
        live = self._member(keys=[self.key], args=[member, max(int(ttl * 1000), 1)])
        return sorted(m.decode() for m in live)

    def leave(self, member: str) -> None:
        self._member(keys=[self.key], args=[member, 0])
