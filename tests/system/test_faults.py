"""The guarantees under injected faults (docs/operations.md): Kafka and Redis restarts, SIGTERM under load.

Each test gets its own broker or redis-server, so stopping it disturbs no other test.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import httpx
import pytest

from model_store.store import CheckpointStore
from stream.local_services import KafkaServer, RedisServer, free_port
from stream.publish import publish
from tests.helpers.learning import EVENTS, PROBE, learned, probe_answers
from tests.helpers.processes import Env, await_until, stop, unread, wait_until, write_spec


@pytest.fixture
def own_kafka(tmp_path) -> Iterator[KafkaServer]:
    server = KafkaServer(tmp_path / "own-kafka").start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "own-redis", aof=True).start()
    yield server
    server.stop()


def test_trainer_waits_for_a_stopped_broker_and_resumes_without_loss_or_repeat(
    own_kafka: KafkaServer, redis_server: RedisServer, prefix: str, tmp_path
):
    env = Env(own_kafka.bootstrap, redis_server.url, tmp_path / "models", prefix, tmp_path / "logs")
    store = CheckpointStore.from_url(redis_server.url, prefix)
    name = prefix
    write_spec(env.models_dir, name=name, topic=name)
    try:
        env.start_trainer(name)
        publish(EVENTS[:400], name, own_kafka.bootstrap, progress=False)
        wait_until(lambda: learned(store, name, 400), timeout=60, what="first 400 learned")

        seen = len(env.log(f"train-{name}"))
        own_kafka.stop()
        wait_until(  # the trainer's fetcher has met the dead broker...
            lambda: "Connection refused" in env.log(f"train-{name}")[seen:],
            timeout=60,
            what="the trainer noticing Kafka is down",
        )
        assert env.children[0].poll() is None, "the trainer gave up while Kafka was down"  # ...and waits
        own_kafka.start()

        publish(EVENTS[400:], name, own_kafka.bootstrap, progress=False)
        meta, blob = wait_until(lambda: learned(store, name, 900), timeout=90, what="all 900 learned")
        assert meta.offsets == {0: 900}
        got, want = probe_answers(blob, EVENTS)
        assert got == want
    finally:
        env.stop_all()


def test_redis_restart_replicas_keep_serving_and_versions_continue_without_gap(
    kafka: KafkaServer, own_redis: RedisServer, prefix: str, tmp_path
):
    env = Env(kafka.bootstrap, own_redis.url, tmp_path / "models", prefix, tmp_path / "logs")
    store = CheckpointStore.from_url(own_redis.url, prefix)
    name = prefix
    write_spec(env.models_dir, name=name, topic=name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        env.start_trainer(name)
        publish(EVENTS[:300], name, kafka.bootstrap, progress=False)
        before, _ = wait_until(lambda: learned(store, name, 300), timeout=60, what="first 300 learned")
        env.start_api(port)
        wait_until(
            lambda: httpx.get(f"{base}/models/{name}").json().get("version") == before.version,
            timeout=30,
            what="replica serving the first version",
        )

        seen = len(env.log(f"train-{name}"))
        own_redis.stop()
        publish(EVENTS[300:600], name, kafka.bootstrap, progress=False)  # learned while Redis is away
        for x in PROBE:
            r = httpx.post(f"{base}/models/{name}/predict", json={"features": x})
            assert r.status_code == 200 and r.json()["version"] == before.version
        ready = wait_until(
            lambda: not (b := httpx.get(f"{base}/readyz").json())["store_reachable"] and b,
            timeout=30,
            what="replica reporting the store unreachable",
        )
        assert ready["models"][name] == before.version
        wait_until(  # the trainer has tried (and failed) to checkpoint...
            lambda: "will retry" in env.log(f"train-{name}")[seen:],
            timeout=60,
            what="the trainer failing to checkpoint while Redis is down",
        )
        assert env.children[0].poll() is None, "the trainer died while Redis was down"  # ...and goes on

        own_redis.start()  # same port, same AOF: versions persist
        after, _ = wait_until(lambda: learned(store, name, 600), timeout=60, what="600 learned after restart")
        assert after.version > before.version
        assert after.offsets == {0: 600}
        metas = store.list_versions(name)
        assert [m.version for m in metas] == sorted(m.version for m in metas)
        assert all(a.n_learned <= b.n_learned for a, b in zip(metas, metas[1:], strict=False))
        assert metas[-1].parent == metas[-2].version
        wait_until(
            lambda: httpx.get(f"{base}/models/{name}").json().get("version") == after.version,
            timeout=30,
            what="replica loading the new version",
        )
        assert httpx.get(f"{base}/readyz").json()["store_reachable"] is True
    finally:
        env.stop_all()


def test_sigterm_lets_in_flight_requests_finish_while_other_replicas_keep_serving(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    env.start_trainer(name)
    publish(EVENTS[:200], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 200), timeout=60, what="a version")
    ports = [free_port(), free_port()]
    doomed, survivor = (env.start_api(p) for p in ports)
    for p in ports:
        wait_until(lambda p=p: httpx.get(f"http://127.0.0.1:{p}/readyz").status_code == 200, timeout=30)
    batch = {"instances": [{"features": x} for x in PROBE] * 50}  # 1000 instances: a slow request

    sent: list[str] = []

    async def body_sent(event: str, info: dict) -> None:
        if event == "http11.send_request_body.complete":
            sent.append(event)

    async def main():
        async with httpx.AsyncClient(timeout=30) as client:
            in_flight = [
                asyncio.create_task(
                    client.post(
                        f"http://127.0.0.1:{ports[0]}/models/{name}/predict/batch",
                        json=batch,
                        extensions={"trace": body_sent},
                    )
                )
                for _ in range(6)
            ]
            await await_until(  # every request sent and read by the replica...
                lambda: len(sent) == len(in_flight) and unread(ports[0]) == 0,
                timeout=30,
                what="the requests reaching the replica",
            )
            assert not all(r.done() for r in in_flight), "answered before SIGTERM: nothing was drained"
            doomed.send_signal(signal.SIGTERM)  # ...and not all are answered
            others = [
                await client.post(
                    f"http://127.0.0.1:{ports[1]}/models/{name}/predict", json={"features": PROBE[i % 20]}
                )
                for i in range(100)
            ]
            return await asyncio.gather(*in_flight), others

    finished, others = asyncio.run(main())
    assert [r.status_code for r in finished] == [200] * 6
    assert all(len(r.json()["predictions"]) == 1000 for r in finished)
    assert {r.status_code for r in others} == {200}
    assert stop(doomed, timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after draining
    assert survivor.poll() is None
