"""Redis Sentinel: trainer and API find the primary through it and follow a failover."""

from __future__ import annotations

import httpx
import redis

from model_store.settings import Settings
from model_store.store import CheckpointStore
from stream.local_services import RedisSentinel, RedisServer
from stream.publish import publish
from tests.helpers.learning import EVENTS, learned
from tests.helpers.processes import Env, wait_until, write_spec


def learned_or_failing_over(store: CheckpointStore, name: str, n: int):
    try:
        return learned(store, name, n)
    except redis.ConnectionError:  # the old primary is gone and no replica is promoted yet
        return None


def test_trainer_and_api_follow_a_sentinel_failover(env: Env, port: int, tmp_path):
    primary = RedisServer(tmp_path / "primary").start()
    replica = RedisServer(tmp_path / "replica", replica_of=primary.port).start()
    sentinel = RedisSentinel(tmp_path / "sentinel", primary.port).start()
    through_sentinel = {
        "STREAMLEARN_REDIS_URL": "redis://127.0.0.1:1/0",  # only the database number is used
        "STREAMLEARN_REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}",
    }
    settings = Settings(
        redis_url=through_sentinel["STREAMLEARN_REDIS_URL"],
        redis_sentinels=through_sentinel["STREAMLEARN_REDIS_SENTINELS"],
        key_prefix=env.key_prefix,
    )
    store = CheckpointStore.from_settings(settings)
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    try:
        env.start_trainer(name, **through_sentinel)
        env.start_api(port, **through_sentinel)
        publish(EVENTS[:300], name, env.kafka, progress=False)
        before, _ = wait_until(lambda: learned(store, name, 300), timeout=60, what="300 learned via Sentinel")
        served = f"http://127.0.0.1:{port}/models/{name}"
        wait_until(lambda: httpx.get(served).json().get("version") == before.version, what="API serving it")
        assert redis.Redis(port=primary.port).wait(1, 5000) == 1  # the replica has it all

        primary.stop(kill=True)
        publish(EVENTS[300:600], name, env.kafka, progress=False)
        after, _ = wait_until(
            lambda: learned_or_failing_over(store, name, 600), timeout=90, what="600 learned after failover"
        )
        assert after.version > before.version and after.offsets == {0: 600}
        assert store.client.connection_pool.get_master_address() == ("127.0.0.1", replica.port)
        wait_until(
            lambda: httpx.get(served).json().get("version") == after.version,
            timeout=30,
            what="the API serving the version written to the new primary",
        )
    finally:
        env.stop_all()
        sentinel.stop()
        replica.stop()
        primary.stop()
