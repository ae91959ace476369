"""Kafka fetching in a process of its own, so that parsing records uses the other core.

kafka-python parses record batches in pure Python: about 14 us a record, as much as
River's ``learn_one`` for a linear model (docs/benchmarks.md). A trainer that fetched
and learned in one thread could never come near River's own rate. The fetcher process
assigns the partitions, seeks where the trainer says, polls, and hands the trainer
batches of raw values with their offsets through a bounded queue.

The fetcher decides nothing: the trainer owns the offsets (they live in its
checkpoints) and skips any record below the offset it expects, so a fetcher that
dies and is started again from the trainer's offsets repeats and loses nothing.

Keep this module light: the spawned process imports it, and only kafka-python.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

QUEUE_BATCHES = 16
"""Batches in flight between the processes: enough to keep the learner busy while the
fetcher polls, few enough that memory stays bounded when the learner is the slow side."""
MAX_POLL_RECORDS = 2000


class Record(NamedTuple):
    """One Kafka record as the trainer needs it, built only off the hot path."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


@dataclass(slots=True)
class Batch:
    """Consecutive records of one partition, in columns (cheap to pickle and to walk)."""

    topic: str
    partition: int
    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    timestamps: list[int]
    highwater: int | None

    def record(self, i: int) -> Record:
        return Record(self.offsets[i], self.keys[i], self.values[i], self.timestamps[i])

    def records(self) -> list[Record]:
        return [self.record(i) for i in range(len(self.offsets))]


class FetcherError(RuntimeError):
    """The fetcher process could not reach Kafka; the trainer starts another one later."""


class Fetcher:
    """Owns the fetcher process and its queue; ``get`` returns the next batches.

    ``wanted`` maps each topic to {partition: next offset}; partitions missing from it
    start at the beginning of the log.
    """

    def __init__(self, bootstrap: str, options: dict[str, Any], wanted: dict[str, dict[int, int]]) -> None:
        self.bootstrap = bootstrap
        self.options = options
        self.wanted = wanted
        self._ctx = multiprocessing.get_context("spawn")  # the trainer has threads: never fork it here
        self._queue: Any = None
        self._stop: Any = None
        self._process: Any = None

    def start(self, wanted: dict[str, dict[int, int]] | None = None) -> None:
        if wanted is not None:
            self.wanted = wanted
        self._queue = self._ctx.Queue(QUEUE_BATCHES)
        self._stop = self._ctx.Event()
        self._process = self._ctx.Process(
            target=fetch,
            args=(self.bootstrap, self.options, self.wanted, self._queue, self._stop, os.getpid()),
            name="streamlearn-fetcher",
            daemon=True,
        )
        self._process.start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def get(self, timeout: float) -> list[Batch]:
        """The batches available now, waiting up to ``timeout`` for the first one.

        Raises FetcherError when the process reported it cannot go on (or died)."""
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            if not self.alive:
                raise FetcherError(f"fetcher process exited with code {self._process.exitcode}") from None
            return []
        items = [first]
        while len(items) < QUEUE_BATCHES:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        batches = []
        for item in items:
            if isinstance(item, str):
                raise FetcherError(item)
            batches.extend(item)
        return batches

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process and reap it; batches still queued are dropped (offsets say so)."""
        if self._process is None:
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._process.is_alive() and time.monotonic() < deadline:
            try:  # unblock a fetcher waiting on a full queue
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=timeout)
        self._queue.cancel_join_thread()
        self._queue.close()
        self._process = None


# -- the fetcher process -------------------------------------------------------------


def fetch(
    bootstrap: str,
    options: dict[str, Any],
    wanted: dict[str, dict[int, int]],
    out: Any,
    stop: Any,
    parent: int,
) -> None:
    """Process body: poll and forward until told to stop or the trainer is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the trainer, which stops us
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s fetcher %(message)s")

    def running() -> bool:
        return not stop.is_set() and os.getppid() == parent

    def put(item: object) -> bool:
        while running():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        consumer = _consumer(bootstrap, options, wanted, running)
    except Exception as exc:  # Kafka away, bad credentials: the trainer retries with backoff
        put(f"cannot consume from Kafka: {type(exc).__name__}: {exc}")
        return
    if consumer is None:
        return
    try:
        while running():
            polled = consumer.poll(timeout_ms=200, max_records=MAX_POLL_RECORDS)
            if not polled:
                continue
            batches = [
                Batch(
                    tp.topic,
                    tp.partition,
                    [r.offset for r in records],
                    [r.key for r in records],
                    [r.value for r in records],
                    [r.timestamp for r in records],
                    consumer.highwater(tp),
                )
                for tp, records in polled.items()
                if records
            ]
            if not put(batches):
                return
    except Exception as exc:
        put(f"fetching failed: {type(exc).__name__}: {exc}")
    finally:
        consumer.close()


def _consumer(
    bootstrap: str, options: dict[str, Any], wanted: dict[str, dict[int, int]], running: Any
) -> Any:
    """A group-less consumer assigned every partition of the wanted topics, at their offsets."""
    from kafka import TopicPartition

    from stream.kafka_io import make_consumer

    consumer = make_consumer(bootstrap, **options)
    assigned: list[tuple[Any, int | None]] = []
    for topic, offsets in wanted.items():
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if not running():
                consumer.close()
                return None
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        assigned += [(TopicPartition(topic, p), offsets.get(p)) for p in sorted(partitions)]
    consumer.assign([tp for tp, _ in assigned])
    for tp, offset in assigned:
        if offset is not None:
            consumer.seek(tp, offset)
        else:
            consumer.seek_to_beginning(tp)
    return consumer
