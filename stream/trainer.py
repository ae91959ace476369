"""The trainer process: Kafka -> decode -> test-then-train -> checkpoints in Redis."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from model_store.settings import Settings
from model_store.snapshot import load_state
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore
from stream.checkpoints import CheckpointDue, Checkpointer
from stream.dead_letters import DeadLetters
from stream.events import BadEvent, decode
from stream.kafka_io import ensure_topics, make_consumer, make_producer
from stream.learner import Learner
from stream.pipeline import validate_spec
from stream.telemetry import TrainerTelemetry, serve_metrics

log = logging.getLogger(__name__)


class Trainer:
    """Learns one model from its topic, exactly once per event across restarts.

    The offsets a checkpoint includes are stored inside it; on start the trainer
    loads the newest checkpoint and seeks each partition to its stored offset.
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
        store: CheckpointStore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        validate_spec(spec)
        self.spec = spec
        self.settings = settings
        self.store = store
        self.clock = clock
        key = settings.signing_key.get_secret_value().encode() if settings.signing_key else None
        self.checkpointer = Checkpointer(spec, store, key)
        self._signing_key = key
        self.due = CheckpointDue(spec.checkpoint.every_events, spec.checkpoint.every_seconds, clock)
        self.learner, self.offsets = self._restore()
        if self.learner.monitors is not None:
            self.learner.monitors.version = self.checkpointer.parent
        self.telemetry = TrainerTelemetry(spec, store, self.learner, self.checkpointer.parent, clock=clock)
        self._retry_at = 0.0
        self.dead_letters: DeadLetters | None = None

    def _restore(self) -> tuple[Learner, dict[int, int]]:
        newest = self.store.fetch_latest(self.spec.name)
        if newest is None:
            log.info("%s: no checkpoint yet, starting from a fresh pipeline", self.spec.name)
            return Learner.from_spec(self.spec), {}
        meta, blob = newest
        learner = Learner.from_state(load_state(meta, blob, self._signing_key), self.spec)
        self.checkpointer.parent = meta.version
        self.checkpointer.feature_stats = meta.feature_stats
        log.info(
            "%s: resumed from v%d (%d learned, offsets %s)",
            self.spec.name,
            meta.version,
            meta.n_learned,
            meta.offsets,
        )
        return learner, dict(meta.offsets)

    # -- Kafka set-up ------------------------------------------------------------

    def _connect(self, stop: threading.Event) -> tuple[KafkaConsumer, KafkaProducer] | None:
        """Create topics and clients, waiting for Kafka as long as it takes."""
        delay = 0.5
        bootstrap = self.settings.kafka_bootstrap_servers
        while not stop.is_set():
            try:
                ensure_topics(bootstrap, {self.spec.topic: self.spec.partitions, self.spec.dlq_topic: 1})
                consumer = make_consumer(bootstrap)
                producer = make_producer(bootstrap)
                return consumer, producer
            except KafkaError as exc:
                log.warning("%s: Kafka not reachable (%s); retrying in %.1fs", self.spec.name, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)
        return None

    def _assign(self, consumer: KafkaConsumer) -> None:
        partitions = None
        while not partitions:
            partitions = consumer.partitions_for_topic(self.spec.topic)
            if not partitions:
                time.sleep(0.2)
        tps = [TopicPartition(self.spec.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in self.offsets:
                consumer.seek(tp, self.offsets[tp.partition])
            else:
                consumer.seek_to_beginning(tp)

    # -- the loop ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then write a final checkpoint."""
        clients = self._connect(stop)
        if clients is None:
            return
        consumer, producer = clients
        self.dead_letters = DeadLetters(producer, self.spec.dlq_topic)
        try:
            self._assign(consumer)
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=200, max_records=2000)
                for tp, records in batches.items():
                    self._learn_batch(tp.partition, records)
                self.telemetry.tick(self.learner, lambda: self._lags(consumer))
                if self.due():
                    self.checkpoint()
            if self.due.events:
                self.checkpoint(force=True)
        finally:
            consumer.close()
            producer.close(timeout=10)

    def _lags(self, consumer: KafkaConsumer) -> dict[int, int]:
        """Records not consumed yet per partition, from the high watermark of the last fetch."""
        lags = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lags[tp.partition] = max(highwater - self.offsets.get(tp.partition, 0), 0)
        return lags

    def _learn_batch(self, partition: int, records: list) -> None:
        learner, dead, task, topic = self.learner, self.dead_letters, self.spec.task, self.spec.topic
        offsets, due, telemetry = self.offsets, self.due, self.telemetry
        timing, clock = telemetry.learn_seconds, time.perf_counter
        learned = 0
        for record in records:
            try:
                x, y = decode(record.value, task)
                started = clock()
                learner.learn_one(x, y)
                timing.add(clock() - started)
                learned += 1
            except BadEvent as exc:
                telemetry.rejected(exc.reason)
                dead.send(record.value, record.key, exc.reason, topic, partition, record.offset)
            except Exception as exc:  # the model refused this event: never stop the trainer
                reason = f"model: {type(exc).__name__}: {exc}"
                telemetry.rejected(reason)
                dead.send(record.value, record.key, reason, topic, partition, record.offset)
            offsets[partition] = record.offset + 1
            due.events += 1
            if due.events >= due.every_events and self.due():
                self.checkpoint()
        telemetry.batch(len(records), learned)

    def checkpoint(self, force: bool = False) -> None:
        """Publish a version including every offset consumed so far; on failure retry later."""
        now = self.clock()
        if not force and now < self._retry_at:
            return
        if self.dead_letters is not None:
            self.dead_letters.flush()  # a checkpoint must not include offsets whose DLQ copy may be lost
        started = time.perf_counter()
        meta = self.checkpointer.try_publish(self.learner, self.offsets)
        if meta is None:
            self._retry_at = now + 1.0
            return
        self.telemetry.checkpointed(meta, time.perf_counter() - started)
        if self.learner.monitors is not None:
            self.learner.monitors.version = meta.version
        self.due.reset()
        main = self.spec.main_metric
        log.info(
            "%s v%d: %d learned, %s %.4f (rolling %s)",
            self.spec.name,
            meta.version,
            meta.n_learned,
            main,
            meta.metrics.get(main) or float("nan"),
            meta.rolling_metrics.get(main),
        )


def run_trainer(spec: ModelSpec, settings: Settings) -> None:
    """Entry point of ``streamlearn train``: SIGINT/SIGTERM only set a stop flag."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    store = CheckpointStore.from_url(settings.redis_url, settings.key_prefix)
    trainer = Trainer(spec, settings, store)
    server = serve_metrics(trainer.telemetry.registry, settings.metrics_host, settings.metrics_port)
    try:
        trainer.run(stop)
    finally:
        if server is not None:
            server.shutdown()
