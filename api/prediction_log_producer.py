"""The prediction log's producer process: ``python -m api.prediction_log_producer``.

A helper process (model_store/helper_process.py) of the replica's prediction log
(api/prediction_log.py): batches of records come in from the replica's thread, go to
librdkafka's producer, and the counts go back (sent, failed, unsent, connected) whenever
they change, at most every ``REPORT_SECONDS`` and once more at the end. Keep this module
light: it imports orjson, confluent-kafka and the helper process only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import astuple, dataclass
from typing import Any

import orjson

from model_store.helper_process import HelperChild

log = logging.getLogger("api.prediction_log_producer")  # not __main__ under python -m
IDLE_POLL_SECONDS = 0.05  # librdkafka's reports are served at least this often
REPORT_SECONDS = 0.05


@dataclass(slots=True)
class Counts:
    """What this process counted, as the replica reads it: ``sent`` is what was produced
    less what failed and what librdkafka still holds; ``unsent`` never reached librdkafka."""

    sent: int = 0
    failed: int = 0
    unsent: int = 0
    connected: int = 0


def main() -> None:
    """Settings ``(bootstrap, client_options)`` from the replica; see ``produce``."""
    replica = HelperChild.connect()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    bootstrap, client_options = replica.settings
    try:
        produce(replica, bootstrap, client_options)
    except (BrokenPipeError, EOFError, OSError):
        pass  # the replica closed its end: it is stopping or gone


def produce(replica: HelperChild, bootstrap: str, client_options: dict[str, Any]) -> None:
    """Batches from the replica to Kafka until an empty batch (its cue), the end of its pipe,
    or a stop while nothing waits; then flush for up to 2 s.

    Delivery reports come for failures only, so a delivered record costs no Python call."""
    from confluent_kafka import KafkaError, KafkaException

    counts = Counts()
    produced = 0

    def on_delivery(_err: Any, _message: Any) -> None:  # not taken within message.timeout.ms
        counts.failed += 1
        counts.connected = 0

    reported: dict[int, float] = {}

    def on_error(err: Any) -> None:  # librdkafka's client-wide errors; it reconnects by itself
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._SSL):
            counts.connected = 0
        now = time.monotonic()
        if now >= reported.get(err.code(), 0.0):  # each kind of error once a minute at most
            reported[err.code()] = now + 60.0
            log.warning("prediction log: Kafka: %s", err.str())

    try:
        producer = _producer(bootstrap, client_options, on_delivery, on_error)
    except KafkaException as exc:  # a configuration librdkafka refuses: nothing can be sent
        log.error("prediction log: cannot create the Kafka producer (%s); dropping every record", exc)
        producer = None
    probe_at, delay = 0.0, 0.5
    told, tell_at = astuple(counts), 0.0
    while True:
        if producer is not None and not counts.connected and time.monotonic() >= probe_at:
            counts.connected = int(_reachable(producer))  # /readyz tells before any record
            probe_at, delay = time.monotonic() + delay, min(delay * 2, 10.0)
            if counts.connected:
                delay = 0.5
        if replica.poll(IDLE_POLL_SECONDS):
            try:
                batch = replica.recv_bytes()
            except EOFError:  # the replica is gone
                break
            if not batch:
                break
            lines = batch.split(b"\n")
            if producer is None:
                counts.unsent += len(lines) // 2
                continue
            send = producer.produce
            for i in range(0, len(lines) - 1, 2):
                topic, key = orjson.loads(lines[i])
                try:
                    send(topic, lines[i + 1], key.encode())
                    produced += 1
                except BufferError:  # librdkafka's queue is full: Kafka is slow or away
                    counts.unsent += 1
                    counts.connected = 0
                except KafkaException as exc:  # e.g. a record larger than the broker takes
                    counts.unsent += 1
                    log.debug("prediction log: produce failed: %s", exc)
        elif not replica.running():  # stopped, or the replica is gone, and nothing waits
            break
        if producer is not None:
            producer.poll(0)  # delivery reports (failures) and errors
            sent = produced - counts.failed - len(producer)
            if sent > counts.sent:
                counts.connected = 1
            counts.sent = sent
        if astuple(counts) != told and time.monotonic() >= tell_at:
            told, tell_at = astuple(counts), time.monotonic() + REPORT_SECONDS
            replica.send(told)
    if producer is not None:
        producer.flush(2.0)
        counts.sent = produced - counts.failed - len(producer)
    replica.send(astuple(counts))


def _producer(bootstrap: str, client_options: dict[str, Any], on_delivery: Any, on_error: Any) -> Any:
    from confluent_kafka import Producer  # the producer only: the API never consumes

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "streamlearn-api-prediction-log",
            "linger.ms": 20,
            "acks": 1,
            "request.timeout.ms": 5_000,
            "message.timeout.ms": 15_000,  # a record Kafka did not take within 15 s is dropped (counted)
            "queue.buffering.max.messages": 100_000,  # then further records are dropped (counted)
            "queue.buffering.max.kbytes": 64 * 1024,
            "partitioner": "murmur2_random",  # the key picks the partition Java's clients would
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
            "error_cb": on_error,
            "log_level": 2,  # its own log of every failed connection attempt: error_cb reports them
            **client_options,
        },
        logger=log,
    )


def _reachable(producer: Any) -> bool:
    """A broker answers a metadata request within 2 s."""
    from confluent_kafka import KafkaException

    try:
        producer.list_topics(timeout=2.0)
    except KafkaException:
        return False
    return True


if __name__ == "__main__":
    main()
