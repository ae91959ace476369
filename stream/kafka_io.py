"""kafka-python wiring: topics, a consumer that owns every partition, producers."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

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


def make_consumer(bootstrap: str, **options: object) -> KafkaConsumer:
    """A consumer without a group: the trainer assigns partitions itself and keeps its
    offsets in its checkpoints, never in Kafka (exactly-once learning, SPEC section 4)."""
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="streamlearn-trainer",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
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
