"""kafka-python wiring: topics (the dead-letter topic sized to its source), producers, and the
consumer ``streamlearn rebuild`` reads watermarks with."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, topics: dict[str, int], **options: object) -> None:
    """Create the missing topics (name -> partitions); existing ones are left alone.

    ``options`` are the security settings (Settings.kafka_client_options)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamlearn-admin", **options)
    try:
        missing = set(topics) - set(admin.list_topics())
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(t, num_partitions=topics[t], replication_factor=1) for t in missing]
                )
                log.info("created topics %s", sorted(missing))
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


DEAD_LETTER_HEADROOM = 64 * 1024
"""Bytes a dead letter may add to the original: its headers (the error is cut at 4 KiB),
key and record overhead."""


def _max_message_bytes(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """Each topic's ``max.message.bytes`` as the broker applies it (its own or the broker's)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, t, {"max.message.bytes": None}) for t in topics]
    described = admin.describe_configs(resources, config_filter="all")["topic"]
    try:
        return {t: int(described[t]["max.message.bytes"]["value"]) for t in topics}
    except KeyError:  # a topic created a moment ago may not be described yet: ask again later
        raise KafkaError(f"the broker does not describe max.message.bytes of {topics} yet") from None


def ensure_dead_letter_topic(bootstrap: str, source: str, dlq: str, **options: object) -> int:
    """Create ``dlq`` (when missing) able to hold any message ``source`` accepts, whole;
    return its ``max.message.bytes``, the request size its producer needs.

    An existing dead-letter topic is left as its operator configured it; when it is smaller
    than the source, a warning says so (a dead letter it refuses holds checkpoints back)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamlearn-admin", **options)
    try:
        limit = _max_message_bytes(admin, [source])[source] + DEAD_LETTER_HEADROOM
        if dlq not in set(admin.list_topics()):
            config = {"max.message.bytes": str(limit)}
            try:
                admin.create_topics([NewTopic(dlq, 1, 1, topic_configs=config)])
                log.info("created dead-letter topic %s (max.message.bytes %d)", dlq, limit)
            except TopicAlreadyExistsError:
                pass
        actual = _max_message_bytes(admin, [dlq])[dlq]
    finally:
        admin.close()
    if actual < limit:
        log.warning(
            "dead-letter topic %s takes messages up to %d bytes, %s up to %d: a larger bad message "
            "cannot be dead-lettered and holds checkpoints back until max.message.bytes of %s is "
            "raised to at least %d",
            dlq,
            actual,
            source,
            limit - DEAD_LETTER_HEADROOM,
            dlq,
            limit,
        )
    return actual


def make_consumer(bootstrap: str, **options: object) -> KafkaConsumer:
    """A consumer without a group: offsets live in checkpoints, never in Kafka."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="streamlearn-rebuild",
        **options,
    )


def make_producer(bootstrap: str, **overrides: object) -> KafkaProducer:
    options: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "linger_ms": 5,
        "acks": "all",
        "client_id": "streamlearn-producer",
    }
    options.update(overrides)
    return KafkaProducer(**options)
