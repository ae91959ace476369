"""DeadLetters keeps every rejected message until Kafka acknowledged it (plain producer stand-in)."""

from __future__ import annotations

from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from kafka.future import Future

from stream.dead_letters import DeadLetters


class Producer:
    """Refuses the first ``refuse`` sends synchronously; later ones resolve at flush as told."""

    def __init__(self, refuse: int = 0, outcome: BaseException | None = None, hang: bool = False) -> None:
        self.refuse, self.outcome, self.hang = refuse, outcome, hang
        self.sent: list[bytes] = []
        self.futures: list[Future] = []

    def send(self, topic: str, value: bytes, key: bytes | None, headers: list) -> Future:
        if self.refuse:
            self.refuse -= 1
            raise MessageSizeTooLargeError("bigger than max_request_size")
        self.sent.append(value)
        self.futures.append(Future())
        return self.futures[-1]

    def flush(self, timeout: float) -> None:
        if self.hang:
            raise KafkaTimeoutError("flush")
        for future in self.futures:
            if not future.is_done:
                future.failure(self.outcome) if self.outcome else future.success(None)


def test_a_refused_send_is_retried_and_holds_settle_until_acknowledged():
    failures = []
    producer = Producer(refuse=1)
    letters = DeadLetters(producer, "t.dlq", on_failure=lambda: failures.append(1))
    letters.send(b"x" * 100, None, "not JSON: ...", "t", 0, 7)
    assert letters.unacknowledged == 1 and failures == [1]
    assert letters.settle() is None  # sent again, acknowledged
    assert producer.sent == [b"x" * 100] and letters.unacknowledged == 0


def test_an_asynchronous_refusal_names_the_message_and_the_error():
    producer = Producer(outcome=MessageSizeTooLargeError("topic limit"))
    letters = DeadLetters(producer, "t.dlq")
    letters.send(b"big", b"k", "schema: ...", "t", 0, 200)
    why = letters.settle()
    assert why is not None and "t[0]@200" in why and "MessageSizeTooLargeError" in why
    assert letters.unacknowledged == 1
    producer.outcome = None
    assert letters.settle() is None
    assert producer.sent == [b"big", b"big"]


def test_unacknowledged_within_the_timeout_is_not_settled():
    producer = Producer(hang=True)
    letters = DeadLetters(producer, "t.dlq")
    letters.send(b"v", None, "schema", "t", 0, 1)
    assert "not acknowledged" in (letters.settle(timeout=0.01) or "")
    producer.hang = False
    assert letters.settle() is None and producer.sent == [b"v"]  # waited for, not sent twice


def test_nothing_sent_settles_at_once():
    assert DeadLetters(Producer(hang=True), "t.dlq").settle() is None
