"""Every served prediction, logged to ``<topic>.predictions`` without ever blocking a request.

The request path only appends to a bounded queue; a background thread owns the
Kafka producer (the serving install's only Kafka client: a producer, never a
consumer). If Kafka is slow or down the queue fills and further records are
dropped and counted; logging resumes by itself when Kafka is back.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import orjson

log = logging.getLogger(__name__)
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class PredictionLog:
    """A bounded, non-blocking hand-off to a Kafka producer thread."""

    def __init__(self, bootstrap: str, client_options: dict[str, Any], max_queued: int = 50_000) -> None:
        self.bootstrap = bootstrap
        self.client_options = client_options
        self._queue: queue.Queue[tuple[str, bytes, bytes]] = queue.Queue(maxsize=max_queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamlearn-prediction-log", daemon=True)
        self.sent = 0
        self.dropped = 0
        self.connected = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def submit(self, topic: str, key: str, record: dict[str, Any]) -> None:
        """Called on the request path: never blocks, never raises."""
        try:
            self._queue.put_nowait((topic, key.encode(), orjson.dumps(record, option=_OPTS)))
        except queue.Full:
            self.dropped += 1
        except (TypeError, orjson.JSONEncodeError):
            self.dropped += 1

    def _on_error(self, exc: BaseException) -> None:
        self.dropped += 1

    def _on_sent(self, _metadata: Any) -> None:
        self.sent += 1

    def _producer(self) -> Any:
        from kafka import KafkaProducer  # the producer only: the API never consumes

        return KafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="streamlearn-api-prediction-log",
            linger_ms=20,
            acks=1,
            max_block_ms=2000,  # only this thread ever waits
            request_timeout_ms=5_000,
            delivery_timeout_ms=15_000,  # a record Kafka did not take within 15 s is dropped (counted)
            **self.client_options,
        )

    def _run(self) -> None:
        producer = None
        delay = 0.5
        while not self._stop.is_set():
            if producer is None:
                try:
                    producer = self._producer()
                    self.connected = True
                    delay = 0.5
                except Exception as exc:  # Kafka down: drop what waits, retry later
                    self.connected = False
                    self._drain_as_dropped()
                    log.warning("prediction log: Kafka unreachable (%s); retrying in %.1fs", exc, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, 10.0)
                    continue
            try:
                topic, key, value = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                future = producer.send(topic, key=key, value=value)
                future.add_callback(self._on_sent)
                future.add_errback(self._on_error)
            except Exception as exc:  # buffer full or metadata unavailable: count and go on
                self.dropped += 1
                self.connected = False
                log.debug("prediction log: send failed: %s", exc)
        if producer is not None:
            try:
                producer.close(timeout=2)
            except Exception:  # noqa: S110 - closing on shutdown, nothing left to report to
                pass

    def _drain_as_dropped(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
            self.dropped += 1
