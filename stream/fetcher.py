"""Kafka fetching and event decoding in a process of its own, so that both use the other core.

Fetching and parsing Kafka records costs about as much as River's ``learn_one`` for a
linear model when done in Python, and decoding an event's JSON and checking it against
the schema costs more on top (docs/benchmarks.md has the figures). The fetcher process
uses librdkafka (confluent-kafka), whose native threads parse far faster, assigns the
partitions, seeks where the trainer says, polls,
decodes the values of the event topics (``stream.decoding.decode_many``), and hands
the trainer batches of raw values, decoded events and offsets through a pipe
(stream/handover.py: marshal, the feature names interned): loading a decoded event
costs the trainer a fraction of decoding it. Everything else of the trainer's
(topics, producers, the CLI) stays on kafka-python.

The fetcher decides nothing: the trainer owns the offsets (they live in its
checkpoints) and skips any record below the offset it expects, so a fetcher that
dies and is started again from the trainer's offsets repeats and loses nothing.

Keep this module light: the fetcher process imports it, confluent-kafka, the hand-over
and the event decoder only (stream.decoding: orjson, pydantic and the event schema).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from model_store.helper_process import HelperChild, HelperProcess
from stream import handover
from stream.backoff import Backoff
from stream.decoding import decode_many
from stream.errors import StreamError
from stream.handover import Batch, Record

__all__ = ["Batch", "Fetcher", "FetcherError", "Record", "fetch_or_restart", "read_again"]

log = logging.getLogger(__name__)

MAX_POLL_RECORDS = 2000
MAX_BATCHES_PER_GET = 16
# The pipe to the trainer (at most the system's maximum, 1 MiB by default): a whole poll's
# batches (about 0.3 KB a record) wait in it. With Linux's default 64 KiB the fetcher could only
# write on while the trainer read, so every handover made the trainer wait (docs/benchmarks.md).
PIPE_BYTES = 4 * 1024 * 1024


class FetcherError(StreamError, RuntimeError):
    """The fetcher process could not reach Kafka, or died; the trainer starts another later."""


class Fetcher:
    """Owns the fetcher process and the pipe it writes batches to; ``get`` reads them.

    The process is ``python -m stream.fetcher``, a helper process
    (model_store/helper_process.py): it does not import the trainer's ``__main__`` again
    (whatever script embeds a Trainer), gets its settings on stdin, ends when the trainer
    does, and the pipe's own buffer bounds what is in flight (the fetcher blocks while the
    learner is the slow side). ``wanted`` maps each topic to {partition: next offset}; partitions
    missing from it start at the beginning of the log. ``decode`` maps the event topics
    to their model's task: their batches arrive with ``events`` decoded. ``options`` are
    the security settings in librdkafka's names (Settings.librdkafka_options).
    """

    def __init__(
        self,
        bootstrap: str,
        options: dict[str, Any],
        wanted: dict[str, dict[int, int]],
        decode: dict[str, str] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.options = options
        self.wanted = wanted
        self.decode = decode or {}
        self._helper: HelperProcess | None = None

    def start(self, wanted: dict[str, dict[int, int]] | None = None) -> None:
        if wanted is not None:
            self.wanted = wanted
        settings = (self.bootstrap, self.options, self.wanted, self.decode)  # may carry credentials
        self._helper = HelperProcess.start("stream.fetcher", settings, to_parent_bytes=PIPE_BYTES)

    def get(self, timeout: float) -> list[Batch]:
        """The batches available now, waiting up to ``timeout`` for the first one.

        Raises FetcherError when the process reported it cannot go on, or died."""
        helper = self._helper
        assert helper is not None
        batches: list[Batch] = []
        try:
            ready = helper.poll(timeout)
            while ready:
                item = handover.loads(helper.recv_bytes())
                if isinstance(item, str):
                    raise FetcherError(item)
                batches.extend(item)
                ready = len(batches) < MAX_BATCHES_PER_GET and helper.poll(0)
        except (EOFError, OSError):
            raise FetcherError(f"fetcher process exited with code {helper.stop()}") from None
        return batches

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process and reap it; batches still in the pipe are dropped (offsets say so)."""
        if self._helper is not None:
            self._helper.stop(timeout)  # a fetcher blocked writing gets a broken pipe and exits
            self._helper = None


def fetch_or_restart(
    fetcher: Fetcher,
    timeout: float,
    wanted: Callable[[], dict[str, dict[int, int]]],
    backoff: Backoff,
    stop: threading.Event,
    name: str,
) -> list[Batch] | None:
    """``fetcher.get(timeout)``, and ``backoff`` starts over once batches arrive. None when
    the fetcher died or cannot reach Kafka: it is started again, after a backoff, from
    ``wanted()`` (the offsets its reader has not learned yet, so nothing repeats or is lost)."""
    try:
        batches = fetcher.get(timeout)
    except FetcherError as exc:
        delay = backoff.next()
        log.warning("%s: %s; starting the fetcher again in %.1fs", name, exc, delay)
        fetcher.stop()
        backoff.wait(stop, delay)
        fetcher.start(wanted())
        return None
    if batches:
        backoff.reset()
    return batches


# -- the fetcher process -------------------------------------------------------------


def main() -> None:
    """``python -m stream.fetcher``: settings from the trainer, batches (or why it cannot go
    on) back to it, until it stops us or is gone (model_store/helper_process.py)."""
    trainer = HelperChild.connect()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s fetcher %(message)s")
    bootstrap, options, wanted, decode = trainer.settings
    try:
        fetch(bootstrap, options, wanted, trainer.send_bytes, trainer.running, decode)
    except (BrokenPipeError, EOFError, OSError):
        pass  # the trainer closed its end: it is stopping or gone


def fetch(
    bootstrap: str,
    options: dict[str, Any],
    wanted: dict[str, dict[int, int]],
    send: Callable[[bytes], None],
    running: Callable[[], bool],
    decode: dict[str, str] | None = None,
) -> None:
    """Poll, decode the event topics' values (``decode``: topic -> task), and forward until
    ``running`` says no (or the pipe breaks): frames of stream/handover.py, batches with
    their names interned or why fetching cannot go on.

    librdkafka (confluent-kafka) fetches and parses in native threads, far faster than
    kafka-python's pure Python, so this core is left to the broker and the learner.
    It reconnects by itself when the broker goes away."""
    try:
        consumer, partitions = _consumer(bootstrap, options, wanted, running)
    except Exception as exc:  # Kafka away, bad credentials: the trainer retries with backoff
        send(handover.dumps_error(f"cannot consume from Kafka: {type(exc).__name__}: {exc}"))
        return
    if consumer is None:
        return
    names = handover.Names()
    try:
        while running():
            messages = consumer.consume(num_messages=MAX_POLL_RECORDS, timeout=0.2)
            if messages:
                send(handover.dumps(_batches(consumer, messages, partitions, decode or {}, names)))
    except (BrokenPipeError, OSError):
        raise
    except Exception as exc:
        send(handover.dumps_error(f"fetching failed: {type(exc).__name__}: {exc}"))
    finally:
        consumer.close()


def _batches(
    consumer: Any,
    messages: list,
    partitions: dict[tuple[str, int], Any],
    decode: dict[str, str],
    names: handover.Names | None = None,
) -> list[Batch]:
    """Group one poll's messages by partition, in order, decoding the event topics' values
    (their feature names interned by ``names``); errors are logged, not forwarded."""
    batches: dict[tuple[str, int], Batch] = {}
    for message in messages:
        if message.error() is not None:
            log.warning("%s", message.error())
            continue
        where = (message.topic(), message.partition())
        batch = batches.get(where)
        if batch is None:
            batch = batches[where] = Batch(where[0], where[1], [], [], [], [], None)
        batch.offsets.append(message.offset())
        batch.keys.append(message.key())
        batch.values.append(message.value())
        batch.timestamps.append(message.timestamp()[1])
    for where, batch in batches.items():
        _low, high = consumer.get_watermark_offsets(partitions[where], cached=True)
        batch.highwater = high if high is not None and high >= 0 else None
        task = decode.get(batch.topic)
        if task is not None:
            batch.events = decode_many(batch.values, task)
            if names is not None:
                names.intern(batch.events)
    return list(batches.values())


def _consumer(
    bootstrap: str, options: dict[str, Any], wanted: dict[str, dict[int, int]], running: Callable[[], bool]
) -> tuple[Any, dict[tuple[str, int], Any]]:
    """A consumer assigned every partition of the wanted topics, at their offsets; it joins
    no group and commits nothing (the offsets live in the trainer's checkpoints)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(_config(bootstrap, options), logger=log)
    assignment: list[Any] = []
    partitions: dict[tuple[str, int], Any] = {}  # for watermark lookups: no offset in them
    for topic, offsets in wanted.items():
        while True:
            if not running():
                consumer.close()
                return None, {}
            found = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                break
            time.sleep(0.2)
        for p in sorted(found.partitions):
            assignment.append(TopicPartition(topic, p, offsets.get(p, OFFSET_BEGINNING)))
            partitions[(topic, p)] = TopicPartition(topic, p)
    consumer.assign(assignment)
    return consumer, partitions


def _config(bootstrap: str, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "streamlearn-trainer",  # required by the client; never joined, never committed
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "client.id": "streamlearn-fetcher",
        "fetch.max.bytes": 16 * 1024 * 1024,
        "max.partition.fetch.bytes": 4 * 1024 * 1024,
        "check.crcs": True,
        **options,
    }


def read_again(
    bootstrap: str,
    options: dict[str, Any],
    topic: str,
    ranges: dict[int, tuple[int, int]],
    timeout: float = 30,
) -> Iterator[tuple[int, list[Record]]]:
    """The records of ``topic`` in ``ranges`` (partition -> [first, end)), in batches, in this
    process: how a trainer reads its pending joins back from the prediction log at start.

    Records the log no longer holds (retention) are simply not there; reading ends at the
    end of each range or of the log. Raises ``FetcherError`` when Kafka does not answer."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({**_config(bootstrap, options), "client.id": "streamlearn-restore"}, logger=log)
    try:
        todo: dict[int, int] = {}
        assignment = []
        for partition, (first, end) in ranges.items():
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            end = min(end, high)
            if max(first, low) < end:
                todo[partition] = end
                assignment.append(TopicPartition(topic, partition, max(first, low)))
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout
        while todo:
            messages = consumer.consume(num_messages=MAX_POLL_RECORDS, timeout=0.5)
            if not messages:
                if time.monotonic() > deadline:
                    raise FetcherError(f"reading {topic} again: no records for {timeout}s, {todo} to go")
                continue
            deadline = time.monotonic() + timeout
            batches: dict[int, list[Record]] = {}
            for m in messages:
                if m.error() is not None:
                    log.warning("%s", m.error())
                    continue
                if m.offset() < todo.get(m.partition(), -1):
                    batches.setdefault(m.partition(), []).append(
                        Record(m.offset(), m.key(), m.value(), m.timestamp()[1])
                    )
                if m.offset() >= todo.get(m.partition(), -1) - 1:
                    todo.pop(m.partition(), None)
            yield from batches.items()
    except KafkaException as exc:
        raise FetcherError(f"reading {topic} again: {exc}") from exc
    finally:
        consumer.close()


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy (one set of classes and settings).
    from stream.fetcher import main as fetcher_main

    fetcher_main()
