"""The dead-letter topic: the original bytes, with the reason and origin in headers."""

from __future__ import annotations

import logging
from collections import Counter

from kafka import KafkaProducer
from kafka.errors import KafkaError

log = logging.getLogger(__name__)


class DeadLetters:
    """Sends rejected messages to ``<topic>.dlq`` and counts them by reason kind.

    The value is the original message value, untouched; headers ``error``,
    ``source_topic``, ``source_partition`` and ``source_offset`` say why and from where
    (the Kafka Connect convention, readable with any client).
    """

    max_value_bytes = 512 * 1024
    """Longer originals are truncated (header ``original_bytes`` keeps the size)."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.counts: Counter[str] = Counter()
        self.failed = 0

    def send(
        self, value: bytes | None, key: bytes | None, reason: str, source: str, partition: int, offset: int
    ) -> None:
        self.counts[reason.split(":", 1)[0]] += 1
        headers = [
            ("error", reason.encode()[:4096]),
            ("source_topic", source.encode()),
            ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode()),
        ]
        value = value or b""
        if len(value) > self.max_value_bytes:
            headers.append(("original_bytes", str(len(value)).encode()))
            value = value[: self.max_value_bytes]  # the topic would refuse it whole
        try:
            self.producer.send(self.topic, value=value, key=key, headers=headers)
        except KafkaError as exc:  # never let a poison message stop the trainer
            self.failed += 1
            log.error("could not dead-letter %s[%d]@%d: %s", source, partition, offset, exc)
            return
        log.warning("dead-lettered %s[%d]@%d: %s", source, partition, offset, reason[:200])

    def flush(self, timeout: float = 30.0) -> None:
        self.producer.flush(timeout=timeout)
