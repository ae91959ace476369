"""The dead-letter topic: the original bytes, whole, with the reason and origin in headers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetter:
    """One rejected message, kept until Kafka has acknowledged its copy on the topic."""

    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]
    origin: str  # "<topic>[<partition>]@<offset>", for the log


class DeadLetters:
    """Sends rejected messages to ``<topic>.dlq``, and knows which Kafka has not acknowledged.

    The value is the original message value, untouched and whole (the topic is created to
    hold whatever its source accepts); headers ``error``, ``source_topic``,
    ``source_partition`` and ``source_offset`` say why and from where (the Kafka Connect
    convention, readable with any client).

    Sending is asynchronous; ``settle`` (before every checkpoint) waits for the
    acknowledgements and sends the refused ones again. While any is unacknowledged the
    checkpoint is held back, so no version includes the offset of a message whose dead
    letter could be lost: after a crash it is read, refused and dead-lettered again.
    """

    def __init__(
        self, producer: KafkaProducer, topic: str, on_failure: Callable[[], None] = lambda: None
    ) -> None:
        self.producer = producer
        self.topic = topic
        self._on_failure = on_failure
        self._in_flight: list[tuple[DeadLetter, FutureRecordMetadata]] = []
        self._refused: list[tuple[DeadLetter, str]] = []

    @property
    def unacknowledged(self) -> int:
        """Dead letters sent or refused since the last ``settle`` that found all acknowledged."""
        return len(self._in_flight) + len(self._refused)

    def send(
        self, value: bytes | None, key: bytes | None, reason: str, source: str, partition: int, offset: int
    ) -> None:
        headers = [
            ("error", reason.encode()[:4096]),
            ("source_topic", source.encode()),
            ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode()),
        ]
        letter = DeadLetter(value or b"", key, headers, f"{source}[{partition}]@{offset}")
        log.warning("dead-lettering %s: %s", letter.origin, reason[:200])
        self._send(letter)

    def _send(self, letter: DeadLetter) -> None:
        try:
            future = self.producer.send(
                self.topic, value=letter.value, key=letter.key, headers=letter.headers
            )
        except KafkaError as exc:  # refused before sending (too large, buffer full): retried at settle
            self._failed(letter, exc)
            return
        self._in_flight.append((letter, future))

    def _failed(self, letter: DeadLetter, exc: BaseException) -> None:
        why = f"{type(exc).__name__}: {exc}"
        log.error(
            "dead letter of %s (%d bytes) not acknowledged by %s: %s; checkpoints wait for it",
            letter.origin,
            len(letter.value),
            self.topic,
            why,
        )
        self._refused.append((letter, why))
        self._on_failure()

    def settle(self, timeout: float = 10.0) -> str | None:
        """Send the refused dead letters again and wait for every acknowledgement: None once all
        are acknowledged, else why not (the checkpoint waits; call again later)."""
        retry, self._refused = self._refused, []
        for letter, _ in retry:
            self._send(letter)
        if not self._in_flight and not self._refused:
            return None
        try:
            self.producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            pass  # what is still in flight stays so, and is looked at next time
        pending = []
        for letter, future in self._in_flight:
            if not future.is_done:
                pending.append((letter, future))
            elif future.failed():
                self._failed(letter, future.exception)
        self._in_flight = pending
        if not self._refused and not pending:
            return None
        if self._refused:
            letter, why = self._refused[0]
            return (
                f"{len(self._refused)} dead letter(s) refused by {self.topic}, first {letter.origin} "
                f"({len(letter.value)} bytes): {why}"
            )
        return f"{len(pending)} dead letter(s) not acknowledged by {self.topic} within {timeout:g}s"
