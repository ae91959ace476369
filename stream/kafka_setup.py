"""What a trainer needs from Kafka before it learns the first event: its topics, a producer
for dead letters, and the pending predictions its checkpoint holds only by position. Each
waits for Kafka as long as it takes (stream/backoff.py), until the trainer is stopped."""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaProducer
from kafka.errors import KafkaError

from model_store.settings import Settings
from model_store.specs import ModelSpec
from stream.backoff import retry
from stream.delayed import DelayedLabels
from stream.fetcher import FetcherError, read_again
from stream.kafka_io import ensure_dead_letter_topic, ensure_topics, make_producer

log = logging.getLogger(__name__)


def connect(
    spec: ModelSpec, settings: Settings, delayed: DelayedLabels | None, stop: threading.Event
) -> KafkaProducer | None:
    """Create the topics (the prediction log's too, with ``delayed``) and return the
    dead-letter producer; None once ``stop`` is set."""
    bootstrap = settings.kafka_bootstrap_servers

    def attempt() -> KafkaProducer:
        options = settings.kafka_client_options()
        topics = {spec.topic: spec.partitions}
        if delayed is not None:
            topics[delayed.topic] = spec.partitions
        ensure_topics(bootstrap, topics, **options)
        dlq_bytes = ensure_dead_letter_topic(bootstrap, spec.topic, spec.dlq_topic, **options)
        # A dead letter as large as its topic takes must not be refused by the producer first.
        # Not idempotent: kafka-python's idempotent producer turns one record the broker
        # refuses as too large into a fatal state that fails every later send, and dead
        # letters are at-least-once anyway (re-sent after a crash, and on a refusal).
        return make_producer(bootstrap, max_request_size=dlq_bytes, enable_idempotence=False, **options)

    return retry(stop, attempt, KafkaError, lambda exc: f"{spec.name}: Kafka not reachable ({exc})")


def read_joins_again(
    spec: ModelSpec, settings: Settings, delayed: DelayedLabels | None, stop: threading.Event
) -> bool:
    """Read the pending predictions the checkpoint holds by position back from the prediction
    log, before any label can look for them. False once ``stop`` is set."""
    if delayed is None or not (ranges := delayed.to_restore()):
        return True
    started = time.monotonic()

    def attempt() -> bool:
        for partition, records in read_again(
            settings.kafka_bootstrap_servers, settings.librdkafka_options(), delayed.topic, ranges
        ):
            delayed.restore(partition, records)
        return True

    if retry(stop, attempt, FetcherError, lambda exc: f"{spec.name}: {exc}") is None:
        return False
    delayed.finish_restore()
    log.info(
        "%s: %d pending predictions read back from %s in %.2fs",
        spec.name,
        delayed.pending,
        delayed.topic,
        time.monotonic() - started,
    )
    return True
