"""The trainer process: Kafka -> decode -> test-then-train -> checkpoints in Redis."""

from __future__ import annotations

import bisect
import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import redis
from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import ValidationError

from model_store.leases import Fenced
from model_store.settings import Settings
from model_store.snapshot import RuntimeMismatch, SnapshotMeta, load_state
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, PromoteRequest, ResetRequest, StoreFull
from stream.backoff import Backoff
from stream.challengers import Challengers
from stream.checkpoints import CheckpointDue, Checkpointer, Prepared, Published, WriteReport
from stream.dead_letters import DeadLetters
from stream.decoding import Decoded, LabelOnly, decode_many
from stream.delayed import DelayedLabels
from stream.errors import StreamError
from stream.fetcher import Batch, Fetcher, FetcherError, Record, read_again
from stream.forked_child import ForkedChild, can_fork
from stream.joiner import Joined, Unjoinable
from stream.kafka_io import ensure_dead_letter_topic, ensure_topics, make_producer
from stream.learner import Learner
from stream.ownership import Ownership
from stream.pipeline import validate_spec
from stream.reset import ResetRequests
from stream.telemetry import TrainerTelemetry, serve_metrics

log = logging.getLogger(__name__)

EXIT_INCOMPATIBLE = 78
"""Exit status of ``streamlearn train`` when the newest checkpoint was written by another
Python or River (EX_CONFIG of sysexits.h: start-up cannot succeed until an operator acts;
a supervisor should not restart on it, e.g. systemd's RestartPreventExitStatus=78)."""

WRITER_TIMEOUT = 60.0
"""Seconds the trainer waits for a forked checkpoint writer when it must (a forced checkpoint,
a reset, stopping) before killing it."""


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


class CheckpointFailed(StreamError, RuntimeError):
    """A forked checkpoint writer raised something else than a Redis error: a bug, not an
    outage, so the trainer stops as it would have with the same error inline."""


@dataclass
class Writing:
    """A checkpoint being written by a forked child."""

    child: ForkedChild
    events: int  # due.events when it was taken
    since: float  # clock() when it was taken
    reset: ResetRequest | None
    bigger_is_better: bool


class Trainer:
    """Learns one model from its topic, exactly once per event across restarts.

    The offsets a checkpoint includes are stored inside it; on start the trainer
    loads the newest checkpoint and seeks each partition to its stored offset.

    A checkpoint is written by a forked child (``fork``, by default the model's
    ``checkpoint.fork`` where the platform can fork): the child holds the memory as it
    was between two events, so its state and offsets match exactly, while the trainer
    learns on and collects the child's report between poll batches. At most one child
    runs: a checkpoint due by time meanwhile is taken once it has ended; one due by
    count waits for it, so versions still fall exactly every ``every_events`` events
    (a policy asking for checkpoints faster than they are written paces learning to
    the writer, as inline writing would).
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
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
        self._fresh()
        self.telemetry = TrainerTelemetry(spec, store, self.learner, None, clock=clock)
        self.dead_letters: DeadLetters | None = None
        self.resets = ResetRequests(spec, store, key, clock)
        self.ownership: Ownership | None = None  # made by run(): a Trainer driven by step() owns nothing

    def _fresh(self) -> None:
        """Everything this trainer learned or was writing, as before the first event: set at
        start, and again when it lost the model and waits to own it again."""
        spec = self.spec
        # Checkpoints go through a connection pool of their own: the children forked to write
        # them must not inherit a pool that another thread (train --all) may hold locked.
        store = self.store.with_own_pool() if self.fork else self.store
        self.checkpointer = Checkpointer(spec, store, self._signing_key)
        self.due = CheckpointDue(spec.checkpoint.every_events, spec.checkpoint.every_seconds, self.clock)
        self.learner: Learner = Learner.from_spec(spec)
        self.offsets: dict[int, int] = {}
        self._highwater: dict[tuple[str, int], int | None] = {}
        self.delayed: DelayedLabels | None = (
            DelayedLabels(spec) if spec.delayed_labels.log_predictions else None
        )
        self.challengers = Challengers.from_spec(spec)
        self._retry_at = 0.0
        self._promotion: PromoteRequest | None = None  # applied, its version not yet published
        self._promoted_as: str | None = None  # the former champion's name as a challenger
        self._next_promotion_check = 0.0
        self._reset: ResetRequest | None = None  # loaded, its first checkpoint not yet published
        self._writing: Writing | None = None

    @property
    def writer_pid(self) -> int | None:
        """Process id of the forked child writing a checkpoint, while one runs."""
        return self._writing.child.pid if self._writing is not None else None

    def restore(self, stop: threading.Event) -> bool:
        """Load the newest checkpoint (or start fresh), waiting for Redis as long as it takes.

        Raises RuntimeMismatch, after saying so (log, metric), when the newest checkpoint was
        written by another Python or River: the trainer must not go on from anything else."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                self.learner, self.offsets = self._restore()
                version = self.checkpointer.parent
                if self.learner.monitors is not None:
                    self.learner.monitors.version = version
                self.telemetry.resumed(self.learner, version)
                return True
            except RuntimeMismatch as exc:
                log.error("%s", refusal(exc))
                self.telemetry.incompatible(exc.written, exc.running)
                raise
            except redis.RedisError as exc:
                delay = backoff.next()
                log.warning("%s: Redis not reachable (%s); retrying in %.1fs", self.spec.name, exc, delay)
                backoff.wait(stop, delay)
        return False

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

    def _connect(self, stop: threading.Event) -> KafkaProducer | None:
        """Create the topics and the dead-letter producer, waiting for Kafka as long as it takes."""
        backoff = Backoff()
        bootstrap = self.settings.kafka_bootstrap_servers
        while not stop.is_set():
            try:
                options = self.settings.kafka_client_options()
                topics = {self.spec.topic: self.spec.partitions}
                if self.delayed is not None:
                    topics[self.delayed.topic] = self.spec.partitions
                ensure_topics(bootstrap, topics, **options)
                dlq = self.spec.dlq_topic
                dlq_bytes = ensure_dead_letter_topic(bootstrap, self.spec.topic, dlq, **options)
                # A dead letter as large as its topic takes must not be refused by the producer first.
                # Not idempotent: kafka-python's idempotent producer turns one record the broker
                # refuses as too large into a fatal state that fails every later send, and dead
                # letters are at-least-once anyway (re-sent after a crash, and on a refusal).
                return make_producer(
                    bootstrap, max_request_size=dlq_bytes, enable_idempotence=False, **options
                )
            except KafkaError as exc:
                delay = backoff.next()
                log.warning("%s: Kafka not reachable (%s); retrying in %.1fs", self.spec.name, exc, delay)
                backoff.wait(stop, delay)
        return None

    def _read_joins_again(self, stop: threading.Event) -> bool:
        """Read the pending predictions the checkpoint holds by position back from the prediction
        log, before any label can look for them; waits for Kafka as long as it takes."""
        delayed = self.delayed
        if delayed is None or not (ranges := delayed.to_restore()):
            return True
        backoff = Backoff()
        started = time.monotonic()
        while not stop.is_set():
            try:
                for partition, records in read_again(
                    self.settings.kafka_bootstrap_servers,
                    self.settings.kafka_client_options(),
                    delayed.topic,
                    ranges,
                ):
                    delayed.restore(partition, records)
            except FetcherError as exc:
                delay = backoff.next()
                log.warning("%s: %s; retrying in %.1fs", self.spec.name, exc, delay)
                backoff.wait(stop, delay)
                continue
            delayed.finish_restore()
            log.info(
                "%s: %d pending predictions read back from %s in %.2fs",
                self.spec.name,
                len(delayed.joiner.predictions),
                delayed.topic,
                time.monotonic() - started,
            )
            return True
        return False

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
            self.checkpointer.epoch = ownership.epoch
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
        producer = self._connect(stop)
        if producer is None:
            return
        if not self._read_joins_again(stop):
            producer.close(timeout=10)
            return
        self.dead_letters = DeadLetters(producer, self.spec.dlq_topic, self.telemetry.dead_letter_failed)
        fetcher = Fetcher(
            self.settings.kafka_bootstrap_servers,
            self.settings.kafka_client_options(),
            self._wanted(),
            decode={self.spec.topic: self.spec.task},
        )
        fetcher.start()
        backoff = Backoff()
        try:
            while not stop.is_set() and not lost.is_set():
                try:
                    batches = fetcher.get(timeout=0.2)
                except FetcherError as exc:
                    delay = backoff.next()
                    log.warning("%s: %s; starting the fetcher again in %.1fs", self.spec.name, exc, delay)
                    fetcher.stop()
                    backoff.wait(stop, delay)
                    fetcher.start(self._wanted())
                    continue
                if batches:
                    backoff.reset()
                self.step(batches, self._lags)
            self.collect_checkpoint(wait=True)
            if self.due.events and not lost.is_set():
                self.checkpoint(force=True)
        finally:
            if self._writing is not None:  # only after an error above: reap the child, no zombie
                self._writing.child.wait(WRITER_TIMEOUT)
                self._writing = None
            fetcher.stop()
            producer.close(timeout=10)

    def step(self, batches: list[Batch], lags: Callable[[], dict[int, int]] = dict) -> None:
        """One fetch's batches: learn them, collect a finished checkpoint writer, apply a
        reset, tell telemetry, checkpoint when due."""
        for batch in batches:
            self._highwater[(batch.topic, batch.partition)] = batch.highwater
            if self.delayed is not None and batch.topic == self.delayed.topic:
                # not counted toward a checkpoint: logged predictions alone change no model,
                # and after a crash they are simply read again from prediction_offsets; a
                # join with a label that waited for one does (that label was counted already)
                records = _unseen(batch, self.delayed.offsets)
                for joined in self.delayed.on_predictions(batch.partition, records):
                    self._learn_joined(joined)
                    self.due.events += 1
            else:
                self._learn_batch(batch)
                if self.delayed is not None:
                    self.delayed.advance(batch.timestamps[-1])
        if self.delayed is not None:
            for refused in self.delayed.expire():
                self._dead_label(refused)
        self.collect_checkpoint()
        self._check_reset()
        self._check_promotion()
        served = self.delayed.served_summary if self.delayed is not None else None
        if self.delayed is not None:
            self.telemetry.pending_joins(len(self.delayed.joiner.predictions))
        self.telemetry.tick(self.learner, lags, served, self.challengers.points if self.challengers else None)
        if self.due():
            self.checkpoint()

    def _lags(self) -> dict[int, int]:
        """Records not learned yet per partition, from the high watermark of the last fetch."""
        lags = {}
        for (topic, partition), highwater in self._highwater.items():
            if topic == self.spec.topic and highwater is not None:
                lags[partition] = max(highwater - self.offsets.get(partition, 0), 0)
        return lags

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
            done, n = self._learn_run(batch, events, i, min(end, i + max(due.every_events - due.events, 1)))
            learned += n
            self.offsets[partition] = positions[done - 1] + 1
            due.events += done - i
            i = done
            if due.events >= due.every_events and self.due():
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

    def _label(self, label: LabelOnly, record: object, partition: int) -> None:
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
            self.checkpointer.parent = request.version
            self._reset = request
        if self._reset is not None:
            self.checkpoint()  # clears self._reset once published; retried after a Redis failure

    def _check_promotion(self) -> None:
        """Apply an operator's promotion: the challenger becomes the champion with its learned
        state, the champion stays on as a challenger, and a version is published at once
        (always served, its metadata says so; the request is removed once it exists)."""
        if self._promotion is not None:
            self.checkpoint()  # retried after a Redis failure
            return
        if not self.challengers:
            return  # nothing to promote (the API and CLI refuse such a request)
        now = self.clock()
        if now < self._next_promotion_check:
            return
        self._next_promotion_check = now + 0.5
        try:
            request = self.store.promote_request(self.spec.name)
        except redis.RedisError:
            return  # checked again later
        if request is None:
            return
        if (
            request.challenger in self.challengers.promoted
            and request.challenger not in self.challengers.members
        ):
            # applied by the version this trainer resumed from (it stopped before removing the request)
            with contextlib.suppress(redis.RedisError):
                self.store.finish_promotion(self.spec.name, request, applied_as=self.checkpointer.parent)
            return
        member = self.challengers.members.get(request.challenger)
        why = None
        if member is None:
            why = f"no challenger '{request.challenger}'; challengers: {sorted(self.challengers.members)}"
        elif member.error is not None:
            why = f"challenger '{request.challenger}' is disabled: {member.error}"
        if why is not None:
            log.error("%s: promotion refused: %s", self.spec.name, why)
            with contextlib.suppress(redis.RedisError):
                self.store.finish_promotion(self.spec.name, request, why=why)
            return
        self.collect_checkpoint(wait=True)  # a version in flight stays the old champion's
        former = f"champion-before-v{(self.checkpointer.parent or 0) + 1}"
        self.learner = self.challengers.promote(request.challenger, self.learner, former)
        self._promotion, self._promoted_as = request, former
        log.info(
            "%s: challenger %s promoted; the champion is now challenger %s",
            self.spec.name,
            request.challenger,
            former,
        )
        self.checkpoint()

    def _auto_promote(self, meta: SnapshotMeta) -> None:
        """With ``promotion.challengers.auto``: ask for the promotion of the best challenger that
        beats the champion by the margin, beyond noise, over enough events (then applied as any
        promotion, but through the promotion gate like any new version)."""
        policy = self.spec.promotion.challengers
        if not policy.auto or not meta.challengers:
            return
        main = self.spec.main_metric
        sign = 1 if getattr(self.learner.cumulative[main], "bigger_is_better", True) else -1
        best: tuple[float, str, dict] | None = None
        for name, row in meta.challengers.items():
            paired, mine, theirs = row.get("paired") or {}, row["metrics"].get(main), meta.metrics.get(main)
            if row.get("error") or mine is None or theirs is None:
                continue
            gain = sign * (mine - theirs)
            if (
                paired.get("n", 0) >= policy.min_events
                and paired.get("p_value", 1.0) < policy.significance
                and (paired.get("difference") or 0) > 0
                and gain >= policy.margin
                and (best is None or gain > best[0])
            ):
                best = (gain, name, paired)
        if best is None:
            return
        gain, name, paired = best
        reason = (
            f"auto: {main} {gain:+.4f} over the champion, p={paired['p_value']:.2g} on {paired['n']} events"
        )
        log.info("%s: promoting challenger %s (%s)", self.spec.name, name, reason)
        with contextlib.suppress(redis.RedisError):  # asked again at the next version
            self.store.request_promotion(self.spec.name, name, reason=reason, by="auto")

    def checkpoint(self, force: bool = False) -> SnapshotMeta | None:
        """Publish a version including every offset consumed so far; on failure retry later.

        Forked, this starts the child that writes it and returns None: ``collect_checkpoint``
        applies its result. ``force`` (the final checkpoint) waits for a running child,
        then writes inline. Inline, it returns the published metadata."""
        if force:
            self.collect_checkpoint(wait=True)
        elif self._writing is not None:
            # At most one child. ``every_events`` stays exact: a checkpoint due by count waits
            # for the child, then is taken at this very event. One due by time (or a reset) is
            # taken once the child has ended, learning on meanwhile.
            by_count = self.due.events - self._writing.events >= self.due.every_events
            if not self.collect_checkpoint(wait=by_count) or (self._reset is None and not self.due()):
                return None
        now = self.clock()
        if not force and now < self._retry_at:
            return None
        if self.dead_letters is not None and (why := self.dead_letters.settle()) is not None:
            # no version may include the offset of a message whose dead letter could be lost
            log.error("%s: checkpoint held back: %s; retrying in 1 s", self.spec.name, why)
            self.telemetry.dead_letters_unacknowledged(self.dead_letters.unacknowledged)
            self._retry_at = now + 1.0
            return None
        if self.dead_letters is not None:
            self.telemetry.dead_letters_unacknowledged(0)
        if self.delayed is not None:
            extra_state, extra_meta = self.delayed.state(), self.delayed.meta_fields()
        else:
            extra_state, extra_meta = {}, {}
        if self.challengers:
            extra_state = {**extra_state, "challengers": self.challengers.state()}
            extra_meta["challengers"] = self.challengers.summary()
        if self._promotion is not None:
            p = self._promotion
            extra_meta["promotion"] = {
                "id": p.id,
                "challenger": p.challenger,
                "former": self._promoted_as,
                "reason": p.reason,
                "by": p.by,
            }
        prepared = self.checkpointer.prepare(
            self.learner, self.offsets, self._reset, extra_state, **extra_meta
        )
        if self.fork and not force:
            try:
                # between two events: the child's copy of the state includes exactly these offsets
                child = ForkedChild.start(partial(self.checkpointer.write_report, prepared))
            except OSError as exc:
                log.warning("%s: cannot fork a checkpoint writer (%s); writing inline", self.spec.name, exc)
            else:
                self._writing = Writing(child, self.due.events, now, self._reset, prepared.bigger_is_better)
                return None
        return self._write_inline(prepared, now)

    def _write_inline(self, prepared: Prepared, now: float) -> SnapshotMeta | None:
        try:
            published = self.checkpointer.write(prepared)
        except redis.RedisError as exc:
            self._failed(str(exc), store_full=False)
            return None
        except StoreFull as exc:
            self._failed(str(exc), store_full=True)
            return None
        except Fenced as exc:
            self._fenced(str(exc))
            return None
        return self._published(published, prepared, self.due.events, self.clock())

    def collect_checkpoint(self, wait: bool = False) -> bool:
        """Apply the result of the forked checkpoint writer once it has ended (``wait``: wait
        for it); True when no writer runs any more. A writer that failed or was killed leaves
        the checkpoint due, retried a second later."""
        writing = self._writing
        if writing is None:
            return True
        result = writing.child.wait(WRITER_TIMEOUT) if wait else writing.child.poll()
        if result is None:
            return False
        self._writing = None
        if result.crash is not None:
            raise CheckpointFailed(
                f"the checkpoint writer of {self.spec.name} failed ({result.status}):\n{result.crash}"
            )
        try:
            report = WriteReport.model_validate_json(result.report) if result.report is not None else None
        except ValidationError:  # cut short (its exit status was unknown): as if it sent nothing
            report = None
        if report is not None and report.published is not None:
            self._published(report.published, writing, writing.events, writing.since)
            return True
        if report is not None and report.fenced is not None:
            self._fenced(report.fenced)
            return True
        why = report.error if report is not None else f"its writer ended with {result.status}, no report"
        self._failed(why or "no reason reported", store_full=report is not None and report.store_full)
        return True

    def _failed(self, why: str, store_full: bool) -> None:
        """A checkpoint Redis refused: retried a second later; a full Redis is said so (log,
        ``streamlearn_checkpoint_store_full``) until a checkpoint goes through."""
        self.telemetry.store_full(store_full)
        if store_full:
            log.error("checkpoint of %s refused, Redis is full: %s", self.spec.name, why)
        else:
            log.error("checkpoint of %s failed, will retry: %s", self.spec.name, why)
        self._retry_at = self.clock() + 1.0

    def _fenced(self, why: str) -> None:
        """A checkpoint refused by the fencing epoch: another trainer owns the model now, so
        nothing this one learned since its last version may ever be served; step back."""
        self.telemetry.fenced()
        self._retry_at = float("inf")  # no further attempt until it owns the model again
        if self.ownership is not None:
            self.ownership.fenced(why)
        else:
            log.error("%s: %s", self.spec.name, why)

    def _published(
        self, published: Published, taken: Prepared | Writing, events: int, since: float
    ) -> SnapshotMeta:
        """What follows a publication, in the trainer: pointers, telemetry, due, log."""
        meta = self.checkpointer.finish(published, taken.bigger_is_better)
        if taken.reset is not None and taken.reset is self._reset:
            self._reset = None
        if self._promotion is None:
            self._auto_promote(meta)
        if (
            meta.promotion is not None
            and self._promotion is not None
            and meta.promotion["id"] == self._promotion.id
        ):
            with contextlib.suppress(redis.RedisError):  # left for the next start: found applied then
                self.store.finish_promotion(self.spec.name, self._promotion, applied_as=meta.version)
            self._promotion = None
        self.telemetry.checkpointed(meta, published.seconds, published.retained_bytes)
        self.telemetry.store_full(False)
        if self.learner.monitors is not None:
            self.learner.monitors.version = meta.version
        self.due.published(events, since)
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


def run_trainer(spec: ModelSpec, settings: Settings) -> int:
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
