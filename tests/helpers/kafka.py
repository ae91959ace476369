"""Reading back what was written to a topic: dead letters, the prediction log."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition


def read_records(bootstrap: str, topic: str, n: int, timeout_ms: int = 15_000, **options: object) -> list:
    """The first ``n`` records of partition 0 of ``topic``, or fewer if none arrives for
    ``timeout_ms``; ``options`` go to the consumer (``fetch_max_bytes`` for large records)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=timeout_ms,
        **options,
    )
    consumer.assign([TopicPartition(topic, 0)])
    records: list = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) == n:
                break
    finally:
        consumer.close()
    return records


def dead_letters(bootstrap: str, topic: str, n: int, **options: object) -> list:
    """The first ``n`` dead letters of events read from ``topic`` (its ``<topic>.dlq``)."""
    return read_records(bootstrap, f"{topic}.dlq", n, **options)
