"""Poison on the topic: every bad message is dead-lettered with its reason, the good ones learned."""

from __future__ import annotations

import os
import random

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from river import datasets

from model_store.store import CheckpointStore
from tests.helpers.processes import Env, wait_until, write_spec


def poison(rng: random.Random) -> list[tuple[bytes, str]]:
    """(message value, expected reason prefix)."""
    nested = b'{"features": {"a": ' + b"[" * 20_000 + b"]" * 20_000 + b'}, "label": true}'
    huge = orjson.dumps({"features": {f"f{i}": "x" * 200 for i in range(12_000)}, "label": True})
    return [
        (bytes(rng.getrandbits(8) for _ in range(64)), "not JSON"),
        (b'{"features": {"long_url": 1.0}, "lab', "not JSON"),
        (nested, "not JSON"),
        (huge, "schema"),
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

    consumer = KafkaConsumer(
        bootstrap_servers=env.kafka,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    consumer.assign([TopicPartition(f"{name}.dlq", 0)])
    dead = []
    for record in consumer:
        dead.append(record)
        if len(dead) == len(sent_bad):
            break
    assert len(dead) == len(sent_bad)
    for record, (value, reason) in zip(dead, sent_bad, strict=True):
        headers = dict(record.headers)
        error = headers["error"].decode()
        assert error.startswith(reason) or reason in error, (reason, error)
        if "original_bytes" in headers:
            assert int(headers["original_bytes"]) == len(value)
            assert value.startswith(record.value)
        else:
            assert record.value == value


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
