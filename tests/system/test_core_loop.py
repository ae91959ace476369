"""Events -> trainer -> versioned checkpoints -> API, on the real Kafka and Redis."""

from __future__ import annotations

import asyncio
import pickle
import random
import signal
import threading
import time

import httpx
import orjson
from kafka import KafkaProducer
from river import datasets

from model_store.store import CheckpointStore
from stream.publish import publish
from tests.helpers.kafka import dead_letters
from tests.helpers.learning import learned, phishing_events, plain_river, probe_answers
from tests.helpers.processes import Env, await_until, stop, wait_until, write_spec

PROBE = [x for x, _ in datasets.Phishing().take(25)]


def test_published_events_are_learned_checkpointed_and_served(env: Env, store: CheckpointStore, port: int):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    events = phishing_events(600)
    env.start_trainer(name)
    env.start_api(port)
    publish(events, name, env.kafka, progress=False)

    meta, blob = wait_until(lambda: learned(store, name, 600), timeout=60, what="600 events learned")
    assert meta.offsets == {0: 600}
    assert meta.version >= 6  # a checkpoint every 100 events
    assert meta.metrics["Accuracy"] > 0.7
    trainer_model = pickle.loads(blob)["model"]
    reference = plain_river(events)

    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/models/{name}").json().get("version") == meta.version,
        timeout=20,
        what="API serving the newest version",
    )
    for x in PROBE:
        r = httpx.post(f"http://127.0.0.1:{port}/models/{name}/predict", json={"features": x})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == name and body["version"] == meta.version
        assert body["prediction"] == trainer_model.predict_one(x) == reference.predict_one(x)
        expected = {str(k).lower(): v for k, v in trainer_model.predict_proba_one(x).items()}
        assert body["proba"] == expected

    batch = httpx.post(
        f"http://127.0.0.1:{port}/models/{name}/predict/batch",
        json={"instances": [{"features": x} for x in PROBE[:5]]},
    ).json()
    assert batch["version"] == meta.version
    assert [p["prediction"] for p in batch["predictions"]] == [reference.predict_one(x) for x in PROBE[:5]]

    versions = httpx.get(f"http://127.0.0.1:{port}/models/{name}/versions").json()
    assert versions[0]["version"] == meta.version and versions[0]["n_learned"] == 600
    assert versions[0]["parent"] == versions[1]["version"]
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200


def test_malformed_events_go_to_the_dead_letter_topic_and_learning_goes_on(env: Env, store: CheckpointStore):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    good = phishing_events(50)
    bad = [
        (b"definitely not json", "not JSON"),
        (b'{"features": {"a": 1}', "not JSON"),
        (orjson.dumps({"features": {"a": 1}}), "schema: field 'label'"),
        (orjson.dumps({"features": {"a": 1}, "label": 0.25}), "does not fit a classification model"),
        (orjson.dumps({"features": {"a": [1]}, "label": True}), "schema: field 'features.a"),
        (orjson.dumps({"features": {"a": "text"}, "label": True}), "model: "),
    ]
    producer = KafkaProducer(bootstrap_servers=env.kafka)
    sent_bad = []
    for i, event in enumerate(good):
        producer.send(name, orjson.dumps(event))
        if i % 8 == 3 and bad:
            value, reason = bad.pop(0)
            key = f"bad-{i}".encode()  # keyed among unkeyed records: both travel to the trainer
            producer.send(name, value, key=key)
            sent_bad.append((value, reason, key))
    producer.flush()
    env.start_trainer(name)
    meta, _ = wait_until(lambda: learned(store, name, 50), timeout=60, what="the 50 good events learned")
    assert meta.offsets == {0: 50 + len(sent_bad)}

    dead = dead_letters(env.kafka, name, len(sent_bad))
    assert len(dead) == len(sent_bad) == 6
    for record, (value, reason, key) in zip(dead, sent_bad, strict=True):
        headers = dict(record.headers)
        assert (record.value, record.key) == (value, key)
        assert reason in headers["error"].decode(), headers["error"]
        assert headers["source_topic"].decode() == name


def test_sigkilled_trainer_resumes_and_learns_every_event_exactly_once(env: Env, store: CheckpointStore):
    name = env.key_prefix
    write_spec(
        env.models_dir,
        name=name,
        topic=name,
        checkpoint={"every_events": 70, "every_seconds": 0.3, "keep": 100},
    )
    events = phishing_events(1250)
    publisher = threading.Thread(
        target=publish, args=(events, name, env.kafka, 60.0), kwargs={"progress": False}
    )
    publisher.start()  # a live stream of about 21 s, so each kill lands mid-stream even on a loaded machine
    rng = random.Random(7)
    killed_at = [0]
    for _ in range(3):
        trainer = env.start_trainer(name)
        wait_until(
            lambda: (m := store.fetch_latest(name)) and m[0].n_learned > killed_at[-1],  # noqa: B023
            timeout=60,
            what="the restarted trainer checkpointing",
        )
        time.sleep(rng.uniform(0.05, 0.5))  # somewhere between two checkpoints
        stop(trainer, signal.SIGKILL)
        killed_at.append(store.fetch_latest(name)[0].n_learned)
    publisher.join()
    assert 0 < killed_at[1] < killed_at[2] < killed_at[3] < 1250, killed_at
    env.start_trainer(name)
    meta, blob = wait_until(lambda: learned(store, name, 1250), timeout=60, what="all 1250 events learned")
    assert meta.offsets == {0: 1250}
    got, want = probe_answers(blob, events, PROBE)
    assert got == want
    assert "resumed from" in env.log(f"train-{name}")


def test_hot_swap_under_concurrent_requests_returns_no_error(env: Env, store: CheckpointStore, port: int):
    name = env.key_prefix
    write_spec(
        env.models_dir,
        name=name,
        topic=name,
        checkpoint={"every_events": 20, "every_seconds": 0.1, "keep": 5},
    )
    publish(phishing_events(20), name, env.kafka, progress=False)
    env.start_trainer(name)
    wait_until(lambda: store.latest_version(name), timeout=60, what="a first version")
    env.start_api(port)
    url = f"http://127.0.0.1:{port}/models/{name}/predict"
    wait_until(
        lambda: httpx.post(url, json={"features": PROBE[0]}).status_code == 200,
        timeout=20,
        what="first prediction",
    )

    async def hammer(results: list, done: asyncio.Event):
        async with httpx.AsyncClient(timeout=10) as client:
            while not done.is_set():
                r = await client.post(url, json={"features": PROBE[len(results) % len(PROBE)]})
                results.append((r.status_code, r.json().get("version")))

    async def main():
        results: list = []
        done = asyncio.Event()
        tasks = [asyncio.create_task(hammer(results, done)) for _ in range(8)]
        events = phishing_events(1200)
        bounds = [*range(20, 1200, 100), 1200]
        for start, end in zip(bounds, bounds[1:], strict=False):  # 12 versions swapped in under load
            await asyncio.to_thread(publish, events[start:end], name, env.kafka, None, None, None, False)
            newest, _ = await asyncio.to_thread(wait_until, lambda n=end: learned(store, name, n), 60)
            await await_until(  # the replica answers with this version
                lambda v=newest.version: results and results[-1][1] >= v,
                timeout=30,
                what=f"v{newest.version} answering",
            )
        after = len(results)
        await await_until(lambda: len(results) >= after + 50, what="answers of the newest version too")
        done.set()
        await asyncio.gather(*tasks)
        return results

    results = asyncio.run(main())
    statuses = {status for status, _ in results}
    versions = {v for _, v in results}
    assert statuses == {200}, statuses
    assert len(versions) >= 5, versions
    assert len(results) > 200
