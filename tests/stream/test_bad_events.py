"""Poison on the topic: every bad message is dead-lettered with its reason, the good ones learned."""

from __future__ import annotations

import os
import random

import httpx
import orjson
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource
from river import datasets

from model_store.snapshot import load_model
from model_store.store import CheckpointStore
from stream.local_services import free_port
from tests.helpers.kafka import dead_letters
from tests.helpers.learning import phishing_events, plain_river
from tests.helpers.processes import SIGNING_KEY, Env, wait_until, write_spec


def poison(rng: random.Random) -> list[tuple[bytes, str]]:
    """(message value, expected reason prefix)."""
    nested = b'{"features": {"a": ' + b"[" * 20_000 + b"]" * 20_000 + b'}, "label": true}'
    huge = orjson.dumps({"features": {f"f{i}": "x" * 200 for i in range(12_000)}, "label": True})
    unlabeled = orjson.dumps({"features": {f"f{i}": 1.0 for i in range(9_000)}, "pad": "p" * 800_000})
    return [
        (bytes(rng.getrandbits(8) for _ in range(64)), "not JSON"),
        (b'{"features": {"long_url": 1.0}, "lab', "not JSON"),
        (nested, "not JSON"),
        (huge, "schema"),
        (unlabeled, "schema"),
        (b'{"features": {"a": NaN}, "label": true}', "schema"),
        (orjson.dumps({"features": {"a": 1}, "label": [1, 2]}), "schema"),
        (orjson.dumps({"features": {"a": 1}, "label": 0.5}), "label"),
        (orjson.dumps({"features": {"a": 1}, "label": None}), "schema"),
        (orjson.dumps("just a string"), "schema"),
    ]


def test_poison_messages_are_dead_lettered_and_the_good_ones_learned(env: Env, store: CheckpointStore):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    rng = random.Random(11)
    bad = poison(rng)
    flood = [(os.urandom(rng.randint(1, 300)), "") for _ in range(500)]
    good = [{"features": x, "label": y} for x, y in datasets.Phishing().take(300)]
    producer = KafkaProducer(bootstrap_servers=env.kafka, max_request_size=8 * 1024 * 1024)
    sent_bad: list[tuple[bytes, str]] = []
    for i, event in enumerate(good):
        producer.send(name, orjson.dumps(event))
        if i % 30 == 5 and bad:
            sent_bad.append(bad.pop(0))
            producer.send(name, sent_bad[-1][0])
        if i == 150:
            for value, _ in flood:
                producer.send(name, value)
            sent_bad.extend(flood)
    producer.flush()
    assert not bad
    trainer = env.start_trainer(name)

    total = len(good) + len(sent_bad)
    meta, _ = wait_until(
        lambda: (m := store.fetch_latest(name)) and m[0].offsets.get(0) == total and m,
        timeout=90,
        what="every message consumed",
    )
    assert meta.n_learned == len(good)
    assert trainer.poll() is None, "the trainer died"

    dead = dead_letters(env.kafka, name, len(sent_bad), fetch_max_bytes=16 * 1024 * 1024)
    assert len(dead) == len(sent_bad)
    for record, (value, reason) in zip(dead, sent_bad, strict=True):
        headers = dict(record.headers)
        error = headers["error"].decode()
        assert error.startswith(reason) or reason in error, (reason, error)
        assert record.value == value, f"dead letter of {len(value)} bytes arrived as {len(record.value)}"


def test_a_model_yaml_naming_non_river_code_fails_at_start_naming_file_and_field(env: Env):
    name = env.key_prefix
    for step, expected in [
        ("os.system", "not a River class path"),
        ("linear_model.NoSuchModel", "has no class NoSuchModel"),
        ({"linear_model.LogisticRegression": {"no_such_param": 3}}, "no_such_param"),
    ]:
        write_spec(env.models_dir, name=name, topic=name, pipeline=["preprocessing.StandardScaler", step])
        proc = env.start_trainer(name)
        assert proc.wait(timeout=60) == 2
        log = env.log(f"train-{name}")
        assert f"{name}.yaml" in log and "pipeline[1]" in log and expected in log, log[-2000:]
        (env.logs / f"train-{name}.log").unlink()


def _dlq_limit(bootstrap: str, topic: str, max_bytes: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource("TOPIC", topic, {"max.message.bytes": str(max_bytes)})])
    finally:
        admin.close()


def _metric(port: int, name: str, model: str) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(f'{name}{{model="{model}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_dead_letter_kafka_refuses_holds_the_checkpoint_back_until_it_is_acknowledged(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    metrics_port = free_port()
    trainer = env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(metrics_port))
    wait_until(lambda: f"{name}.dlq" in _topics(env.kafka), timeout=60, what="the trainer created its DLQ")
    # The operator's dead-letter topic now takes less than the source does.
    _dlq_limit(env.kafka, f"{name}.dlq", 4096)

    events = phishing_events(500)
    bad = b"not json " + b"x" * 20_000
    producer = KafkaProducer(bootstrap_servers=env.kafka, max_request_size=1024 * 1024)
    for i, event in enumerate(events):
        if i == 200:
            producer.send(name, bad)  # offset 200
        producer.send(name, orjson.dumps(event))
    producer.flush()

    # It learns on past the refused dead letter, says why, and no version includes its offset.
    wait_until(
        lambda: (_metric(metrics_port, "streamlearn_events_learned_total", name) or 0) == len(events),
        timeout=90,
        what="every good event learned",
    )
    wait_until(
        lambda: (_metric(metrics_port, "streamlearn_dead_letters_failed_total", name) or 0) >= 2,
        timeout=30,
        what="the refused dead letter counted, and retried",
    )
    assert (_metric(metrics_port, "streamlearn_dead_letters_unacknowledged", name) or 0) >= 1
    newest = store.fetch_latest(name)
    assert newest is not None and newest[0].offsets[0] <= 200, newest and newest[0].offsets
    log = env.log(f"train-{name}")
    assert "checkpoint held back" in log and f"{name}[0]@200" in log and "TooLarge" in log, log[-3000:]
    assert trainer.poll() is None, "the trainer died"

    # Once the topic takes it, the retry lands it whole and the checkpoint moves on, exactly once.
    _dlq_limit(env.kafka, f"{name}.dlq", 1024 * 1024)
    meta, blob = wait_until(
        lambda: (m := store.fetch_latest(name)) and m[0].offsets[0] == len(events) + 1 and m,
        timeout=60,
        what="a checkpoint past the dead letter",
    )
    assert meta.n_learned == len(events)
    model = load_model(meta, blob, SIGNING_KEY.encode())
    reference = plain_river(events)
    sample = events[-1]["features"]
    assert model.predict_proba_one(sample) == reference.predict_proba_one(sample)
    dead = dead_letters(env.kafka, name, 1)
    assert dead[0].value == bad
    assert dict(dead[0].headers)["source_offset"] == b"200"
    assert _metric(metrics_port, "streamlearn_dead_letters_unacknowledged", name) == 0


def _topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()
