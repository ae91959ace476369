"""Every served prediction, logged to ``<topic>.predictions`` without ever blocking a request.

The request path only serialises the record and appends it to a bounded deque: no lock, no
thread to wake. A thread of the replica takes what accumulated every 50 ms and writes it, one
batch per write, into a pipe to a helper process (``python -m api.prediction_log_producer``,
model_store/helper_process.py) that owns the Kafka producer (the serving install's only Kafka
client: librdkafka's producer, through confluent-kafka, never a consumer). The producer's
batching, compression and network work run on librdkafka's own threads in C; the child's
Python does little more than hand each record over, and none of it takes the GIL from
requests. The child starts with the replica and is started again if it dies; it ends with
the replica, even a SIGKILLed one.

The child sends its counts back on a pipe of its own whenever they change (every 50 ms at
most), and the same thread keeps the newest. If Kafka is slow or down, librdkafka holds
records for up to 15 s, then drops and counts them; when its queue is full, the pipe and then
the deque fill, and further records are dropped and counted; logging resumes by itself when
Kafka is back. ``sent``, ``dropped`` and ``connected`` (``/readyz``) add up both processes'
counts, those of producer processes that ended included.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import orjson

from model_store.helper_process import HelperProcess

log = logging.getLogger(__name__)
_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_MAX_BATCH = 5_000  # records per write into the pipe
_PRODUCER = "api.prediction_log_producer"


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
        self._pending: deque[bytes] = deque()  # "[topic, key]\nrecord", both JSON
        self._stop = threading.Event()
        self._stop_timeout = 3.0
        self._thread = threading.Thread(target=self._run, name="streamlearn-prediction-log", daemon=True)
        self._child: HelperProcess | None = None  # the newest producer process; only the thread uses it
        self._live = False  # _child runs, as far as the thread knows
        self._full = 0  # dropped on the request path: the deque was full
        self._lost = 0  # dropped by the thread: the child died with them
        self._unserialisable = 0  # dropped on the request path: not JSON
        # What the producer processes counted, as one tuple so that readers see one report:
        # sent, failed, unsent (the newest report, plus what ended processes counted), connected.
        self._counts = (0, 0, 0, 0)
        self._ended = (0, 0, 0)

    @property
    def sent(self) -> int:
        return self._counts[0]

    @property
    def dropped(self) -> int:
        _sent, failed, unsent, _connected = self._counts
        return self._full + self._unserialisable + self._lost + unsent + failed

    @property
    def connected(self) -> bool:
        """The producer process has a connection to Kafka (it starts with ``start``)."""
        return bool(self._counts[3])

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Hand on what is queued, let the child flush its producer, then end it."""
        self._stop_timeout = timeout
        self._stop.set()
        self._thread.join(timeout + 2.0)  # the thread ends the child, which it started
        if self._child is not None:
            self._child.stop(1.0)  # done already, unless the thread is stuck

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

    def submit_prediction(self, topic: str, key: str, answer: bytes, features: dict[str, Any]) -> None:
        """``submit`` for an answered prediction. Its record is the answer's object as sent
        (``answer``: a JSON object with at least one member) with ``features`` and ``ts`` (now)
        added, spliced in as bytes: serialising the record again, answer included, cost a
        logged request more than twice as much."""
        if len(self._pending) >= self.max_queued:
            self._full += 1
            return
        try:
            line = b'[%b,%b]\n%b,"features":%b,"ts":%b}' % (
                orjson.dumps(topic),
                orjson.dumps(key),
                answer[:-1],
                orjson.dumps(features),
                orjson.dumps(time.time()),
            )
        except orjson.JSONEncodeError:  # e.g. a lone surrogate, which the route's parser lets by
            self._unserialisable += 1
            return
        self._pending.append(line)

    def _run(self) -> None:
        try:  # the producer starts with the replica: /readyz tells about Kafka before any prediction
            self._producer()
        except OSError as exc:
            log.warning("prediction log: cannot start the producer process (%s); trying again later", exc)
        while True:
            self._read_counts()
            if not self._pending:
                if self._stop.is_set():
                    break
                self._stop.wait(self.poll_seconds)
                continue
            batch, n = self._batch()
            try:
                self._producer().send_bytes(batch)
            except (OSError, ValueError) as exc:  # the child died: these are lost, start another
                self._lost += n
                self._read_counts()
                self._child_ended()
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
        self._end_child()

    def _batch(self) -> tuple[bytes, int]:
        """What is queued, as lines: ``[topic, key]`` then the record, for each record."""
        pending = self._pending
        records = [pending.popleft() for _ in range(min(len(pending), _MAX_BATCH))]
        records.append(b"")
        return b"\n".join(records), len(records) - 1

    def _producer(self) -> HelperProcess:
        """The running producer process: another one once the last one ended. Started from
        this thread only, which outlives it (its death signal comes when this thread ends)."""
        if self._child is None or not self._live:
            self._child = HelperProcess.start(_PRODUCER, (self.bootstrap, self.client_options))
            self._live = True
        return self._child

    def _read_counts(self, wait: float = 0.0) -> None:
        """Keep the newest counts the producer process sent, waiting up to ``wait`` for the
        first one; the end of its pipe means it ended."""
        child = self._child
        if child is None or not self._live:
            return
        try:
            while child.poll(wait):
                sent, failed, unsent, connected = child.recv()
                ended = self._ended
                self._counts = (ended[0] + sent, ended[1] + failed, ended[2] + unsent, connected)
                wait = 0.0
        except (EOFError, OSError):
            self._child_ended()

    def _child_ended(self) -> None:
        """Its counts become those of ended processes; it is reaped (ended first if need be)."""
        if self._child is None or not self._live:
            return
        self._live = False
        self._ended = self._counts[:3]
        self._counts = (*self._ended, 0)
        self._child.stop(1.0)

    def _end_child(self) -> None:
        """The cue to flush and end, its counts until it ended, and it is reaped."""
        if self._child is None or not self._live:
            return
        try:
            self._child.send_bytes(b"")
        except (OSError, ValueError):
            pass
        # A producer that never reached Kafka holds nothing to flush: do not wait for it to give
        # up bootstrapping.
        deadline = time.monotonic() + (self._stop_timeout if self.connected else 0.2)
        while self._live and (left := deadline - time.monotonic()) > 0:
            self._read_counts(left)
        self._child_ended()
