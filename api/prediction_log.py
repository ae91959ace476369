"""Every served prediction, logged to ``<topic>.predictions`` without ever blocking a request.

The request path only serialises the record and appends it to a bounded deque: no lock, no
thread to wake. A thread of the replica takes what accumulated every 50 ms and writes it,
one batch per write, into a pipe to a child process that owns the Kafka producer (the
serving install's only Kafka client: librdkafka's producer, through confluent-kafka, never a
consumer). The producer's batching, compression and network work run on librdkafka's own
threads in C; the child's Python does little more than hand each record over, and none of
it takes the GIL from requests. The child starts with the replica and is started again if
it dies.

If Kafka is slow or down, librdkafka holds records for up to 15 s, then drops and counts
them; when its queue is full, the pipe and then the deque fill, and further records are
dropped and counted; logging resumes by itself when Kafka is back. ``sent``, ``dropped`` and
``connected`` (``/readyz``) add up both processes' counts.
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
_IDLE_POLL_SECONDS = 0.05  # the child serves librdkafka's reports at least this often
# Slots of the counters the child shares with the replica; each has one writing thread.
_SENT, _FAILED, _UNSENT, _CONNECTED = range(4)


class PredictionLog:
    """A bounded, non-blocking hand-off to a Kafka producer in a child process.

    ``client_options``: librdkafka settings added to the producer's (security, in librdkafka's
    names: ``Settings.librdkafka_options``). ``poll_seconds`` is how long the thread sleeps
    between batches: records reach the producer at most that late, which no join of a
    label notices. Each wake takes the GIL from the requests: at 5 ms a logged prediction
    cost the replica about 10 us of CPU more than at 50 ms (docs/benchmarks.md)."""

    def __init__(
        self,
        bootstrap: str,
        client_options: dict[str, Any],
        max_queued: int = 50_000,
        poll_seconds: float = 0.05,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_options = client_options
        self.max_queued = max_queued
        self.poll_seconds = poll_seconds
        self._context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self._shared = self._context.RawArray("q", 4)  # written by the child, read here
        self._pending: deque[bytes] = deque()  # "[topic, key]\nrecord", both JSON
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamlearn-prediction-log", daemon=True)
        self._child: Any = None
        self._pipe: Connection | None = None
        self._full = 0  # dropped on the request path: the deque was full
        self._lost = 0  # dropped by the thread: the child died with them
        self._unserialisable = 0  # dropped on the request path: not JSON

    @property
    def sent(self) -> int:
        return self._shared[_SENT]

    @property
    def dropped(self) -> int:
        counted_here = self._full + self._unserialisable + self._lost
        return counted_here + self._shared[_UNSENT] + self._shared[_FAILED]

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
        """Called on the request path: never blocks, never raises. The record is serialised
        here: queued bytes are no work for the garbage collector, where queued dicts, promoted
        while they wait, would bring on full collections of the replica's whole heap."""
        if len(self._pending) >= self.max_queued:
            self._full += 1
            return
        try:
            value = orjson.dumps(record, option=_OPTS)
        except (TypeError, orjson.JSONEncodeError):
            self._unserialisable += 1
            return
        self._pending.append(orjson.dumps((topic, key)) + b"\n" + value)

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
                continue
            # Let records accumulate: under load there is nearly always one waiting, and a thread
            # taking one or two at a time would take the GIL from requests hundreds of thousands
            # of times a second.
            if len(self._pending) < _MAX_BATCH:
                self._stop.wait(self.poll_seconds)
        if self._pipe is not None:
            try:
                self._pipe.send_bytes(b"")  # the child's cue to flush and end
                self._pipe.close()
            except (OSError, ValueError):
                pass

    def _batch(self) -> tuple[bytes, int]:
        """What is queued, as lines: ``[topic, key]`` then the record, for each record."""
        pending = self._pending
        records = [pending.popleft() for _ in range(min(len(pending), _MAX_BATCH))]
        records.append(b"")
        return b"\n".join(records), len(records) - 1

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
    """The child process: batches from the pipe to Kafka until the pipe ends or says stop.

    Delivery reports come for failures only, so a delivered record costs no Python call:
    ``sent`` is what was produced less what failed and what librdkafka still holds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the replica ends us
    from confluent_kafka import KafkaError, KafkaException

    failed = produced = 0

    def on_delivery(_err: Any, _message: Any) -> None:  # not taken within message.timeout.ms
        nonlocal failed
        failed += 1
        shared[_CONNECTED] = 0

    reported: dict[int, float] = {}

    def on_error(err: Any) -> None:  # librdkafka's client-wide errors; it reconnects by itself
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._AUTHENTICATION, KafkaError._SSL):
            shared[_CONNECTED] = 0
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
    while True:
        if producer is not None and not shared[_CONNECTED] and time.monotonic() >= probe_at:
            shared[_CONNECTED] = int(_reachable(producer))  # /readyz tells before any record
            probe_at, delay = time.monotonic() + delay, min(delay * 2, 10.0)
            if shared[_CONNECTED]:
                delay = 0.5
        if pipe.poll(_IDLE_POLL_SECONDS):
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
            send = producer.produce
            for i in range(0, len(lines) - 1, 2):
                topic, key = orjson.loads(lines[i])
                try:
                    send(topic, lines[i + 1], key.encode())
                    produced += 1
                except BufferError:  # librdkafka's queue is full: Kafka is slow or away
                    shared[_UNSENT] += 1
                    shared[_CONNECTED] = 0
                except KafkaException as exc:  # e.g. a record larger than the broker takes
                    shared[_UNSENT] += 1
                    log.debug("prediction log: produce failed: %s", exc)
        if producer is not None:
            producer.poll(0)  # delivery reports (failures) and errors
            sent = produced - failed - len(producer)
            if sent > shared[_SENT]:
                shared[_CONNECTED] = 1
            shared[_SENT], shared[_FAILED] = sent, failed
    if producer is not None:
        producer.flush(2.0)
        shared[_SENT], shared[_FAILED] = produced - failed - len(producer), failed


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
