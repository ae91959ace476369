"""Every served prediction, logged to ``<topic>.predictions`` without ever blocking a request.

The request path only appends the record to a bounded deque: no lock, no thread to wake.
A thread of the replica serialises what accumulated every few milliseconds and writes it,
one batch per write, into a pipe to a child process that owns the Kafka producer (the
serving install's only Kafka client: a producer, never a consumer). kafka-python spends
tens of microseconds of pure Python per record; in its own process that time no longer takes the
GIL from requests. The child starts with the replica and is started again if it dies.

If Kafka is slow or down the child drops and counts records, the pipe and then the deque
fill, and further records are dropped and counted; logging resumes by itself when Kafka is
back. ``sent``, ``dropped`` and ``connected`` (``/readyz``) add up both processes' counts.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import orjson

log = logging.getLogger(__name__)
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_MAX_BATCH = 5_000  # records per write into the pipe
# Slots of the counters the child shares with the replica; each has one writing thread.
_SENT, _FAILED, _UNSENT, _CONNECTED = range(4)


class PredictionLog:
    """A bounded, non-blocking hand-off to a Kafka producer in a child process.

    ``poll_seconds`` is how long the thread sleeps when nothing waits: records reach the
    producer at most that late, which its own ``linger_ms`` batching dwarfs anyway."""

    def __init__(
        self,
        bootstrap: str,
        client_options: dict[str, Any],
        max_queued: int = 50_000,
        poll_seconds: float = 0.005,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_options = client_options
        self.max_queued = max_queued
        self.poll_seconds = poll_seconds
        self._context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self._shared = self._context.RawArray("q", 4)  # written by the child, read here
        self._pending: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamlearn-prediction-log", daemon=True)
        self._child: Any = None
        self._pipe: Connection | None = None
        self._full = 0  # dropped on the request path: the deque was full
        self._lost = 0  # dropped by the thread: not serialisable, or the child died with them

    @property
    def sent(self) -> int:
        return self._shared[_SENT]

    @property
    def dropped(self) -> int:
        return self._full + self._lost + self._shared[_UNSENT] + self._shared[_FAILED]

    @property
    def connected(self) -> bool:
        """The producer process has a connection to Kafka (it starts with ``start``)."""
        return bool(self._shared[_CONNECTED])

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Hand on what is queued, let the child flush its producer, then end it."""
        self._stop.set()
        self._thread.join(timeout)
        if self._child is not None:
            # A producer that never reached Kafka holds nothing to flush: do not wait for it
            # to give up bootstrapping.
            self._child.join(timeout if self.connected else 0.2)
            if self._child.is_alive():
                self._child.terminate()
                self._child.join(1.0)

    def submit(self, topic: str, key: str, record: dict[str, Any]) -> None:
        """Called on the request path: never blocks, never raises. ``record`` must not change
        afterwards: the thread serialises it later."""
        if len(self._pending) >= self.max_queued:
            self._full += 1
        else:
            self._pending.append((topic, key, record))

    def _run(self) -> None:
        try:  # the producer starts with the replica: /readyz tells about Kafka before any prediction
            self._child_pipe()
        except (OSError, ValueError) as exc:
            log.warning("prediction log: cannot start the producer process (%s); trying again later", exc)
        while True:
            if not self._pending:
                if self._stop.is_set():
                    break
                self._stop.wait(self.poll_seconds)
                continue
            batch, n = self._batch()
            try:
                self._child_pipe().send_bytes(batch)
            except (OSError, ValueError) as exc:  # the child died: these are lost, start another
                self._lost += n
                self._pipe = None
                if self._stop.is_set():
                    self._lost += len(self._pending)
                    self._pending.clear()
                    break
                log.warning("prediction log: producer process gone (%s); starting another", exc)
                self._stop.wait(1.0)
        if self._pipe is not None:
            try:
                self._pipe.send_bytes(b"")  # the child's cue to flush and end
                self._pipe.close()
            except (OSError, ValueError):
                pass

    def _batch(self) -> tuple[bytes, int]:
        """What is queued, as lines: ``[topic, key]`` then the record, for each record."""
        lines: list[bytes] = []
        pending = self._pending
        while pending and len(lines) < 2 * _MAX_BATCH:
            topic, key, record = pending.popleft()
            try:
                value = orjson.dumps(record, option=_OPTS)
            except (TypeError, orjson.JSONEncodeError):
                self._lost += 1
                continue
            lines.append(orjson.dumps((topic, key)))
            lines.append(value)
        lines.append(b"")
        return b"\n".join(lines), len(lines) // 2

    def _child_pipe(self) -> Connection:
        if self._pipe is None:
            if self._child is not None:
                self._child.join(0.1)
            receiving, self._pipe = self._context.Pipe(duplex=False)
            self._child = self._context.Process(
                target=produce,
                args=(receiving, self._shared, self.bootstrap, self.client_options),
                name="streamlearn-prediction-log",
                daemon=True,  # ends with the replica; and on the pipe's end if the replica is killed
            )
            self._child.start()
            receiving.close()
        return self._pipe


def produce(pipe: Connection, shared: Any, bootstrap: str, client_options: dict[str, Any]) -> None:
    """The child process: batches from the pipe to Kafka until the pipe ends or says stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the replica ends us
    producer = None
    retry_at, delay = 0.0, 0.5
    partitions: dict[str, tuple[int, float]] = {}

    def on_sent(_metadata: Any) -> None:
        shared[_SENT] += 1
        shared[_CONNECTED] = 1

    def on_error(_exc: BaseException) -> None:  # Kafka did not take it within delivery_timeout_ms
        shared[_FAILED] += 1

    while True:
        now = time.monotonic()
        if producer is None and now >= retry_at:
            try:
                producer = _producer(bootstrap, client_options)
                shared[_CONNECTED] = 1
                delay = 0.5
            except Exception as exc:  # Kafka down: drop what comes meanwhile, retry later
                shared[_CONNECTED] = 0
                log.warning("prediction log: Kafka unreachable (%s); retrying in %.1fs", exc, delay)
                retry_at, delay = now + delay, min(delay * 2, 10.0)
        if not pipe.poll(None if producer is not None else max(0.0, retry_at - time.monotonic())):
            continue
        try:
            batch = pipe.recv_bytes()
        except EOFError:  # the replica is gone
            break
        if not batch:
            break
        lines = batch.split(b"\n")
        if producer is None:
            shared[_UNSENT] += len(lines) // 2
            continue
        for i in range(0, len(lines) - 1, 2):
            topic, key = orjson.loads(lines[i])
            try:
                partition = _partition(producer, topic, partitions)
                future = producer.send(topic, key=key.encode(), value=lines[i + 1], partition=partition)
                future.add_callback(on_sent)
                future.add_errback(on_error)
            except Exception as exc:  # buffer full or metadata unavailable: count and go on
                shared[_UNSENT] += 1
                shared[_CONNECTED] = 0
                log.debug("prediction log: send failed: %s", exc)
    if producer is not None:
        try:
            producer.close(timeout=2)
        except Exception:  # noqa: S110 - closing on shutdown, nothing left to report to
            pass


def _producer(bootstrap: str, client_options: dict[str, Any]) -> Any:
    from kafka import KafkaProducer  # the producer only: the API never consumes

    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="streamlearn-api-prediction-log",
        linger_ms=20,
        acks=1,
        max_block_ms=2000,  # only this process ever waits
        request_timeout_ms=5_000,
        delivery_timeout_ms=15_000,  # a record Kafka did not take within 15 s is dropped (counted)
        **client_options,
    )


def _partition(producer: Any, topic: str, known: dict[str, tuple[int, float]]) -> int | None:
    """0 when the topic has one partition, sparing kafka-python's pure-Python key hash (which
    picks 0 too); otherwise None, so the key picks the partition. The count is looked up
    again after a minute, in case partitions were added."""
    now = time.monotonic()
    count = known.get(topic)
    if count is None or count[1] < now:
        count = known[topic] = (len(producer.partitions_for(topic)), now + 60.0)
    return 0 if count[0] == 1 else None
