"""The benchmark's events: River's bundled Phishing dataset (1,250 rows, no download),
cycled to any length, encoded exactly as a producer would put them on the topic."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from river import datasets


def phishing_events() -> Iterator[dict]:
    """Phishing as event dicts, cycled forever."""
    rows = [{"features": dict(x), "label": y} for x, y in datasets.Phishing()]
    return itertools.cycle(rows)


def raw_values(n: int) -> list[bytes]:
    """The first ``n`` cycled events as Kafka message values (UTF-8 JSON, one line each)."""
    return [orjson.dumps(event) for event in itertools.islice(phishing_events(), n)]


def an_instance() -> dict:
    """One Phishing instance as a prediction request body."""
    return {"features": next(phishing_events())["features"]}


def create_topic(bootstrap: str, topic: str) -> None:
    """One partition: the trainer's offsets, and the marker's, are then one number."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()


def producer(bootstrap: str) -> KafkaProducer:
    """No linger: a marker's send time is the time it leaves, not the end of a batch window."""
    return KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all", client_id="bench")


def publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Pre-publish ``values`` to a fresh topic, so the trainer reads a full backlog."""
    create_topic(bootstrap, topic)
    out = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all", client_id="bench"
    )
    try:
        for value in values:
            out.send(topic, value)
        out.flush()
    finally:
        out.close(timeout=10)


def write_values(path: Path, values: list[bytes]) -> Path:
    """One value per line for the baseline subprocess (compact JSON has no newline)."""
    path.write_bytes(b"\n".join(values) + b"\n")
    return path


def paced_sender(out: KafkaProducer, topic: str, rate: float, stop, events: Iterator[dict]) -> int:
    """Send events at a steady ``rate`` per second until ``stop`` is set; return how many."""
    start, sent = time.monotonic(), 0
    for event in events:
        if stop.is_set():
            break
        wait = start + sent / rate - time.monotonic()
        if wait > 0:
            stop.wait(wait)
        out.send(topic, orjson.dumps(event))
        sent += 1
    return sent
