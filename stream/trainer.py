"""The trainer process: Kafka -> decode -> test-then-train -> checkpoints in Redis.

``step`` is one poll's worth: learn the batches fetched (the topic's events, and the joins
the prediction log completes), collect the checkpoint being written, apply a reset or a
promotion, announce (telemetry), checkpoint when due. Each concern has its own module:
the checkpoint's contents (stream/checkpoints.py) and its writing (stream/checkpoint_writer.py),
resets (stream/reset.py), challenger promotions (stream/challenger_promotion.py), delayed
labels (stream/delayed.py), the Kafka set-up before the first event (stream/kafka_setup.py).
"""

from __future__ import annotations

import bisect
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable

import redis

from model_store.snapshot import RuntimeMismatch, SnapshotMeta, load_state
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, ResetRequest
from stream.backoff import Backoff, retry
from stream.challenger_promotion import ChallengerPromotions
from stream.challengers import Challengers
from stream.checkpoint_writer import CheckpointFailed, CheckpointWriter, Written
from stream.checkpoints import CheckpointDue, Checkpointer
from stream.dead_letters import DeadLetters
from stream.decoding import Decoded, LabelOnly, decode_many
from stream.delayed import DelayedLabels
from stream.fetcher import Batch, Fetcher, Record, fetch_or_restart
from stream.forked_child import can_fork
from stream.joiner import Joined, Unjoinable
from stream.kafka_setup import connect, read_joins_again
from stream.learner import Learner
from stream.ownership import Ownership
from stream.pipeline import validate_spec
from stream.reset import ResetRequests
from stream.settings import TrainerSettings
from stream.telemetry import TrainerTelemetry, serve_metrics

__all__ = [
    "EXIT_INCOMPATIBLE",
    "CheckpointFailed",
    "Trainer",
    "collect_young_less_often",
    "freeze_start_up_objects",
    "refusal",
    "run_trainer",
]

log = logging.getLogger(__name__)

EXIT_INCOMPATIBLE = 78
"""Exit status of ``streamlearn train`` when the newest checkpoint was written by another
Python or River (EX_CONFIG of sysexits.h: start-up cannot succeed until an operator acts;
a supervisor should not restart on it, e.g. systemd's RestartPreventExitStatus=78)."""


def refusal(exc: RuntimeMismatch) -> str:
    """What a trainer says when it cannot resume from a checkpoint another runtime wrote:
    both runtimes and the ways out."""
    return (
        f"{exc.model}: cannot resume from v{exc.version}: it was written by {exc.written}, and this "
        f"trainer runs {exc.running}; River's pickles do not load across versions. Nothing was "
        f"learned; the trainer stops (exit status {EXIT_INCOMPATIBLE}) and refuses again at every "
        f"start until one of: (1) run the image it was written with ({exc.written}) to go on "
        f"training this lineage; or (2) re-learn the model with this one from the topic's retained "
        f"events: `streamlearn rebuild {exc.model}` (a new lineage; the old versions stay for audit "
        f"until retention, and replicas keep serving what their River loads). Runbook: "
        f"docs/operations.md, 'Upgrading River or Python'."
    )


class Trainer:
    """Learns one model from its topic, exactly once per event across restarts.

    The offsets a checkpoint includes are stored inside it; on start the trainer
    loads the newest checkpoint and seeks each partition to its stored offset.

    A checkpoint is written by a forked child (``fork``, by default the model's
    ``checkpoint.fork`` where the platform can fork) while the trainer learns on;
    stream/checkpoint_writer.py says how at most one child runs and when the trainer
    waits for it.
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: TrainerSettings,
        store: CheckpointStore,
        clock: Callable[[], float] = time.monotonic,
        fork: bool | None = None,
    ) -> None:
        validate_spec(spec)
        self.spec = spec
        self.settings = settings
        self.store = store
        self.clock = clock
        self.fork = (spec.checkpoint.fork if fork is None else fork) and can_fork()
        key = settings.signing_key.get_secret_value().encode() if settings.signing_key else None
        self._signing_key = key
        learner = Learner.from_spec(spec)
        self.telemetry = TrainerTelemetry(spec, store, learner, None, clock=clock)  # the writer reports to it
        self._fresh(learner)
        self.dead_letters: DeadLetters | None = None
        self.resets = ResetRequests(spec, store, key, clock)
        self.ownership: Ownership | None = None  # made by run(): a Trainer driven by step() owns nothing

    def _fresh(self, learner: Learner | None = None) -> None:
        """Everything this trainer learned or was writing, as before the first event: set at
        start, and again when it lost the model and waits to own it again."""
        spec = self.spec
        # Checkpoints go through a connection pool of their own: the children forked to write
        # them must not inherit a pool that another thread (train --all) may hold locked.
        store = self.store.with_own_pool() if self.fork else self.store
        self.checkpointer = Checkpointer(spec, store, self._signing_key)
        self.due = CheckpointDue(spec.checkpoint.every_events, spec.checkpoint.every_seconds, self.clock)
        self.writer = CheckpointWriter(self.checkpointer, self.due, self.telemetry, self.fork, self.clock)
        self.learner: Learner = learner or Learner.from_spec(spec)
        self.offsets: dict[int, int] = {}
        self._highwater: dict[tuple[str, int], int | None] = {}
        self.delayed: DelayedLabels | None = (
            DelayedLabels(spec) if spec.delayed_labels.log_predictions else None
        )
        self.challengers = Challengers.from_spec(spec)
        self.promotions = ChallengerPromotions(spec, self.store, self.clock)
        self._reset: ResetRequest | None = None  # loaded, its first checkpoint not yet published

    @property
    def writer_pid(self) -> int | None:
        """Process id of the forked child writing a checkpoint, while one runs."""
        return self.writer.pid

    # -- start-up ------------------------------------------------------------------

    def restore(self, stop: threading.Event) -> bool:
        """Load the newest checkpoint (or start fresh), waiting for Redis as long as it takes.

        Raises RuntimeMismatch, after saying so (log, metric), when the newest checkpoint was
        written by another Python or River: the trainer must not go on from anything else."""
        name = self.spec.name
        try:
            restored = retry(
                stop, self._restore, redis.RedisError, lambda exc: f"{name}: Redis not reachable ({exc})"
            )
        except RuntimeMismatch as exc:
            log.error("%s", refusal(exc))
            self.telemetry.incompatible(exc.written, exc.running)
            raise
        if restored is None:
            return False
        self.learner, self.offsets = restored
        version = self.checkpointer.parent
        self.learner.at_version(version)
        self.telemetry.resumed(self.learner, version)
        return True

    def _restore(self) -> tuple[Learner, dict[int, int]]:
        newest = self.store.fetch_latest_parts(self.spec.name)
        if newest is None:
            log.info("%s: no checkpoint yet, starting from a fresh pipeline", self.spec.name)
            return Learner.from_spec(self.spec), {}
        meta, blob, training = newest
        state = load_state(meta, blob, self._signing_key, training)
        learner = Learner.from_state(state, self.spec)
        self.challengers = Challengers.from_spec(self.spec, state.get("challengers"), learner.n_learned)
        if self.delayed is not None:
            self.delayed = DelayedLabels(self.spec, state, meta.prediction_offsets)
        self.checkpointer.resume_from(meta)
        log.info(
            "%s: resumed from v%d (%d learned, offsets %s)",
            self.spec.name,
            meta.version,
            meta.n_learned,
            meta.offsets,
        )
        return learner, dict(meta.offsets)

    def _wanted(self) -> dict[str, dict[int, int]]:
        """Where the fetcher starts: every partition of the topic (and of the prediction
        log) at the next offset this trainer has not learned."""
        wanted = {self.spec.topic: dict(self.offsets)}
        if self.delayed is not None:
            wanted[self.delayed.topic] = dict(self.delayed.offsets)
        return wanted

    # -- the loop ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Own the model (a standby until its lease is free), learn until ``stop`` is set, then
        write a final checkpoint and release the lease. A trainer that loses the lease (paused
        or cut off past its TTL, or a fenced checkpoint) drops what it learned since its last
        version and waits as a standby again."""
        s = self.settings
        if self.ownership is None:
            self.ownership = Ownership(
                self.store.leases, self.spec.name, s.trainer_lease_seconds, s.trainer_lease_renew_seconds
            )
        ownership = self.ownership
        while ownership.acquire(stop):
            self.checkpointer.fence_with(ownership.epoch)
            self.telemetry.owned(ownership.epoch)
            try:
                self._run_owned(stop, ownership.lost)
            finally:
                ownership.release()
                self.telemetry.owned(None)
            if not ownership.lost.is_set():
                return
            self._fresh()  # the new owner resumes from the newest version; so will this one

    def _run_owned(self, stop: threading.Event, lost: threading.Event) -> None:
        """Learn from the newest checkpoint on, until ``stop`` (a final checkpoint) or ``lost``."""
        if not self.restore(stop):
            return
        producer = connect(self.spec, self.settings, self.delayed, stop)
        if producer is None:
            return
        if not read_joins_again(self.spec, self.settings, self.delayed, stop):
            producer.close(timeout=10)
            return
        self.dead_letters = DeadLetters(producer, self.spec.dlq_topic, self.telemetry.dead_letter_failed)
        fetcher = Fetcher(
            self.settings.kafka_bootstrap_servers,
            self.settings.librdkafka_options(),
            self._wanted(),
            decode={self.spec.topic: self.spec.task},
        )
        fetcher.start()
        backoff = Backoff()
        try:
            while not stop.is_set() and not lost.is_set():
                batches = fetch_or_restart(fetcher, 0.2, self._wanted, backoff, stop, self.spec.name)
                if batches is not None:
                    self.step(batches, self._lags)
            self.collect_checkpoint(wait=True)
            if self.due.events and not lost.is_set():
                self.checkpoint(force=True)
        finally:
            self.writer.abandon()  # only after an error above: reap the child, no zombie
            fetcher.stop()
            producer.close(timeout=10)

    def step(self, batches: list[Batch], lags: Callable[[], dict[int, int]] = dict) -> None:
        """One fetch's batches: learn them, collect a finished checkpoint writer, apply a
        reset or a promotion, announce, checkpoint when due."""
        delayed = self.delayed
        for batch in batches:
            self._highwater[(batch.topic, batch.partition)] = batch.highwater
            if delayed is not None and batch.topic == delayed.topic:
                self._learn_predictions(batch, delayed)
            else:
                self._learn_batch(batch)
                if delayed is not None:
                    delayed.advance(batch.timestamps[-1])
        if delayed is not None:
            for refused in delayed.expire():
                self._dead_label(refused)
        self.collect_checkpoint()
        self._check_reset()
        self._check_promotion()
        self._announce(lags)
        if self.due():
            self.checkpoint()

    def _announce(self, lags: Callable[[], dict[int, int]]) -> None:
        """Telemetry: the gauges, and a metric point when one is due."""
        delayed, challengers = self.delayed, self.challengers
        if delayed is not None:
            self.telemetry.pending_joins(delayed.pending)
        served = delayed.served_summary if delayed is not None else None
        self.telemetry.tick(self.learner, lags, served, challengers.points if challengers else None)

    def _lags(self) -> dict[int, int]:
        """Records not learned yet per partition, from the high watermark of the last fetch."""
        lags = {}
        for (topic, partition), highwater in self._highwater.items():
            if topic == self.spec.topic and highwater is not None:
                lags[partition] = max(highwater - self.offsets.get(partition, 0), 0)
        return lags

    # -- learning ------------------------------------------------------------------

    def _learn_batch(self, batch: Batch) -> None:
        """Learn a batch of the topic in runs that end where a checkpoint falls due by count,
        so offsets and counts are written once a run, not once an event."""
        positions, partition, due = batch.offsets, batch.partition, self.due
        # A fetcher started again may hand over records this trainer already learned.
        i = bisect.bisect_left(positions, self.offsets.get(partition, 0))
        end = len(positions)
        if i == end:
            return
        consumed, learned = end - i, 0
        events = batch.events if batch.events is not None else decode_many(batch.values, self.spec.task)
        while i < end:
            done, n = self._learn_run(batch, events, i, min(end, i + due.left()))
            learned += n
            self.offsets[partition] = positions[done - 1] + 1
            due.count(done - i)
            i = done
            if due.by_count():
                self.checkpoint()
        self.telemetry.batch(consumed, learned)

    def _learn_run(self, batch: Batch, events: list[Decoded], start: int, stop: int) -> tuple[int, int]:
        """Test-then-train ``events[start:stop]``: (index after the last one handled, events
        learned). The learner takes the events up to one it cannot learn; that one goes to
        the dead-letter topic, or for a label-only event ends the run (its join, if its
        prediction is pending, is learned at once; the label counts as one event)."""
        learn_many, timer = self.learner.learn_many, self.telemetry.learn_seconds.add
        i, learned = start, 0
        challengers = self.challengers
        while i < stop:
            done, error = learn_many(events, i, stop, timer)
            if challengers and done > i:  # the same events, in the same order
                challengers.learn(events, i, done, self.learner.recent_predictions(done - i))
            learned += done - i
            if done == stop:
                break
            event = events[done]
            if error is not None:  # the model refused this event: never stop the trainer
                self._dead_event(batch, done, f"model: {type(error).__name__}: {error}")
            elif type(event) is LabelOnly:
                self._label(event, batch.record(done), batch.partition)
                return done + 1, learned
            else:
                self._dead_event(batch, done, event.reason)
            i = done + 1
        return stop, learned

    def _dead_event(self, batch: Batch, i: int, reason: str) -> None:
        self.telemetry.rejected(reason)
        self.dead_letters.send(
            batch.values[i], batch.keys[i], reason, self.spec.topic, batch.partition, batch.offsets[i]
        )

    # -- delayed labels ----------------------------------------------------------

    def _learn_predictions(self, batch: Batch, delayed: DelayedLabels) -> None:
        """Logged predictions. Not counted toward a checkpoint: they alone change no model,
        and after a crash they are simply read again from prediction_offsets; a join with a
        label that waited for one is (that label was counted already)."""
        for joined in delayed.on_predictions(batch.partition, _unseen(batch, delayed.offsets)):
            self._learn_joined(joined)
            self.due.count()

    def _label(self, label: LabelOnly, record: Record, partition: int) -> None:
        """A label-only event: learn now if its prediction was logged, else wait or refuse."""
        if self.delayed is None:
            reason = "label-only event, but this model does not log predictions (delayed_labels)"
            self.dead_letters.send(
                record.value, record.key, reason, self.spec.topic, partition, record.offset
            )
            return
        outcome = self.delayed.on_label(label.id, label.label, record)
        if isinstance(outcome, Joined):
            self._learn_joined(outcome)
        elif isinstance(outcome, Unjoinable):
            self._dead_label(outcome)

    def _learn_joined(self, joined: Joined) -> None:
        """Learn from the features that were served; score the prediction that was served."""
        try:
            predicted = self.learner.learn_one(joined.features, joined.label)
        except Exception as exc:  # the model refused these features: count, never stop
            log.warning("%s: joined event %s not learned: %s", self.spec.name, joined.id, exc)
            return
        if self.challengers:
            self.challengers.learn_joined(joined, predicted)
        try:
            self.delayed.scored(joined)
        except Exception as exc:  # a label the metric cannot score: learned, not scored; never stop
            log.warning("%s: served prediction %s not scored: %s", self.spec.name, joined.id, exc)

    def _dead_label(self, refused: Unjoinable) -> None:
        self.dead_letters.send(refused.raw, refused.id.encode(), refused.reason, self.spec.topic, -1, -1)

    # -- an operator's requests ----------------------------------------------------

    def _check_reset(self) -> None:
        """Apply an operator's reset (stream/reset.py): continue from version N's state with the
        current offsets (events since N are not learned again), and publish that at once."""
        request = self.resets.poll()
        if request is not None and (loaded := self.resets.load(request)) is not None:
            self.collect_checkpoint(wait=True)  # its version must not become the reset's parent
            self.learner, state = loaded
            self.challengers = Challengers.from_spec(
                self.spec, state.get("challengers"), self.learner.n_learned
            )
            self.checkpointer.branch_from(request.version)
            self._reset = request
        if self._reset is not None:
            self.checkpoint()  # clears self._reset once published; retried after a Redis failure

    def _check_promotion(self) -> None:
        """Apply a promotion (stream/challenger_promotion.py): the challenger becomes the
        champion with its learned state, the champion stays on as a challenger, and a version
        is published at once."""
        promotions = self.promotions
        if promotions.pending is not None:
            self.checkpoint()  # retried after a Redis failure
            return
        request = promotions.poll(self.challengers, self.checkpointer.parent)
        if request is None:
            return
        self.collect_checkpoint(wait=True)  # a version in flight stays the old champion's
        former = f"champion-before-v{(self.checkpointer.parent or 0) + 1}"
        self.learner = self.challengers.promote(request.challenger, self.learner, former)
        promotions.applied(request, former)
        self.checkpoint()

    # -- checkpoints ---------------------------------------------------------------

    def checkpoint(self, force: bool = False) -> SnapshotMeta | None:
        """Publish a version including every offset consumed so far; on failure retry later.

        Forked, this starts the child that writes it and returns None: ``collect_checkpoint``
        follows up on its result. ``force`` (the final checkpoint) waits for a running child,
        then writes inline. Inline, it returns the published metadata."""
        writer = self.writer
        if force:
            self.collect_checkpoint(wait=True)
        elif writer.busy:
            # At most one child. ``every_events`` stays exact: a checkpoint due by count waits
            # for the child, then is taken at this very event. One due by time (or a reset) is
            # taken once the child has ended, learning on meanwhile.
            if not self.collect_checkpoint(wait=writer.due_by_count()) or (
                self._reset is None and not self.due()
            ):
                return None
        if not force and not writer.may_start():
            return None
        if not self._dead_letters_settled():
            return None
        extra_state, extra_meta = self._extras()
        prepared = self.checkpointer.prepare(
            self.learner, self.offsets, self._reset, extra_state, **extra_meta
        )
        return self._follow_up(writer.start(prepared, inline=force))

    def collect_checkpoint(self, wait: bool = False) -> bool:
        """Follow up on the forked writer's checkpoint once it has ended (``wait``: wait for
        it); True when no writer runs any more."""
        self._follow_up(self.writer.collect(wait))
        return not self.writer.busy

    def _dead_letters_settled(self) -> bool:
        """No version may include the offset of a message whose dead letter could be lost:
        while one is unacknowledged the checkpoint is held back (learning goes on)."""
        if self.dead_letters is None:
            return True
        why = self.dead_letters.settle()
        if why is not None:
            self.writer.hold(why)
        self.telemetry.dead_letters_unacknowledged(self.dead_letters.unacknowledged if why is not None else 0)
        return why is None

    def _extras(self) -> tuple[dict, dict]:
        """What joins the learner's state and the metadata: the delayed-label join, the
        challengers, a promotion being applied."""
        if self.delayed is not None:
            extra_state, extra_meta = self.delayed.state(), self.delayed.meta_fields()
        else:
            extra_state, extra_meta = {}, {}
        if self.challengers:
            extra_state = {**extra_state, "challengers": self.challengers.state()}
            extra_meta["challengers"] = self.challengers.summary()
        if (promotion := self.promotions.meta()) is not None:
            extra_meta["promotion"] = promotion
        return extra_state, extra_meta

    def _follow_up(self, written: Written | None) -> SnapshotMeta | None:
        """What a checkpoint's outcome means for the trainer: a published version completes
        the reset or promotion it applied and names the detections to come; a fenced one
        means another trainer owns the model, so step back."""
        if written is None:
            return None
        if written.fenced is not None:
            if self.ownership is not None:
                self.ownership.fenced(written.fenced)
            else:
                log.error("%s: %s", self.spec.name, written.fenced)
            return None
        meta = written.meta
        if meta is None:
            return None  # failed: retried a second later
        if written.reset is not None and written.reset is self._reset:
            self._reset = None
        main = self.learner.cumulative[self.spec.main_metric]
        self.promotions.published(meta, bool(getattr(main, "bigger_is_better", True)))
        self.learner.at_version(meta.version)
        return meta


def freeze_start_up_objects() -> None:
    """Move everything allocated so far (modules, clients, settings) out of the cyclic GC.

    A trainer process holds far more start-up objects than its model, and every full
    collection walked them all (docs/benchmarks.md: a measurable share of a linear model's time).
    Frozen, they are still freed by reference counting, only not scanned; the model,
    restored after this, stays fully collected. It also spares the forked checkpoint
    writers the copy-on-write of pages whose GC headers a collection would touch."""
    gc.collect()
    gc.freeze()


YOUNG_COLLECTION_EVERY = 10_000
"""Net allocations of GC-tracked objects between two young collections (CPython's default
is 700). A trainer allocates in bursts: each fetched frame loads thousands of events that
live until the data-drift sample lets them go, so at 700 a young collection ran every few
hundred events and the survivors were promoted into older generations, collected again.
Measured in the trainer once learning (gc.callbacks, docs/benchmarks.md): the cyclic GC
took 1.0% of a linear model's learning and 0.5% of a tree's; 0.3% at 10,000 for both, with
no full collection in 8 s."""


def collect_young_less_often() -> None:
    """Raise the young generation's threshold to ``YOUNG_COLLECTION_EVERY`` (never lower it)."""
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_COLLECTION_EVERY), *older)


def run_trainer(spec: ModelSpec, settings: TrainerSettings) -> int:
    """Entry point of ``streamlearn train``: SIGINT/SIGTERM only set a stop flag. Returns the
    exit status: 0, or EXIT_INCOMPATIBLE when the newest checkpoint needs another runtime
    (said once in the log, no traceback)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    store = CheckpointStore.from_settings(settings)
    trainer = Trainer(spec, settings, store)
    server = serve_metrics(trainer.telemetry.registry, settings.metrics_host, settings.metrics_port)
    freeze_start_up_objects()
    collect_young_less_often()
    try:
        trainer.run(stop)
    except RuntimeMismatch:
        return EXIT_INCOMPATIBLE  # the trainer said why (log, metric)
    finally:
        if server is not None:
            server.shutdown()
    return 0


def _unseen(batch: Batch, offsets: dict[int, int]) -> list[Record]:
    """The records of a batch at or past the partition's next offset."""
    first = bisect.bisect_left(batch.offsets, offsets.get(batch.partition, 0))
    return [batch.record(i) for i in range(first, len(batch.offsets))]
