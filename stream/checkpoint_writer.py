"""Writing the trainer's checkpoints: at most one forked child at a time, its result collected
between poll batches; inline when the trainer stops or cannot fork; a second's pause after a
failure, and none at all once fenced.

A checkpoint in flight is an object here, not flags on the trainer (as Quix Streams keeps
its checkpoint an object of its own): the trainer asks whether it ``may_start`` one,
``start``s it with what it prepared (stream/checkpoints.py), and ``collect``s what became
of it, a ``Written`` it follows up on (the reset or promotion it applied, the lease).

The child holds the memory as it was between two events, so its state and offsets match
exactly while the trainer learns on. While it runs, a checkpoint due by time waits until
it has ended; one due by count waits for it (``due_by_count``), so versions still fall
exactly every ``every_events`` events (a policy asking for checkpoints faster than they
are written paces learning to the writer, as inline writing would).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import redis
from pydantic import ValidationError

from model_store.leases import Fenced
from model_store.snapshot import SnapshotMeta
from model_store.store import ResetRequest, StoreFull
from stream.checkpoints import CheckpointDue, Checkpointer, Prepared, Published, WriteReport
from stream.errors import StreamError
from stream.forked_child import ForkedChild
from stream.telemetry import TrainerTelemetry

log = logging.getLogger(__name__)

WRITER_TIMEOUT = 60.0
"""Seconds the trainer waits for a forked checkpoint writer when it must (a forced checkpoint,
a reset, stopping) before killing it."""

RETRY_SECONDS = 1.0
"""Pause before a checkpoint is tried again after Redis refused it (or it was held back)."""


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


@dataclass(frozen=True)
class Written:
    """What became of one checkpoint: the version published (and the reset it applied), or
    the fencing refusal; neither when it failed (it is retried)."""

    meta: SnapshotMeta | None = None
    reset: ResetRequest | None = None
    fenced: str | None = None


class CheckpointWriter:
    """Writes the checkpoints the trainer prepares; see the module docstring."""

    def __init__(
        self,
        checkpointer: Checkpointer,
        due: CheckpointDue,
        telemetry: TrainerTelemetry,
        fork: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checkpointer = checkpointer
        self.due = due
        self.telemetry = telemetry
        self.fork = fork
        self.clock = clock
        self.name = checkpointer.spec.name
        self._writing: Writing | None = None
        self._retry_at = 0.0

    @property
    def pid(self) -> int | None:
        """Process id of the forked child writing a checkpoint, while one runs."""
        return self._writing.child.pid if self._writing is not None else None

    @property
    def busy(self) -> bool:
        """A forked child is writing a checkpoint (its result not collected yet)."""
        return self._writing is not None

    def due_by_count(self) -> bool:
        """While a child writes: whether the next checkpoint is due by count already, counted
        from when the running one was taken (then the trainer waits for the child)."""
        return self._writing is not None and self.due.by_count(taken=self._writing.events)

    def may_start(self) -> bool:
        """No pause after a failure (or a hold) is running, and this trainer is not fenced."""
        return self.clock() >= self._retry_at

    def hold(self, why: str) -> None:
        """Something outside the writer forbids a checkpoint now: try again in a second."""
        log.error("%s: checkpoint held back: %s; retrying in %g s", self.name, why, RETRY_SECONDS)
        self._retry_at = self.clock() + RETRY_SECONDS

    def start(self, prepared: Prepared, inline: bool = False) -> Written | None:
        """Write ``prepared`` in a forked child (None: ``collect`` tells what became of it), or
        inline with ``inline``, without fork, or when the fork fails."""
        now = self.clock()
        if self.fork and not inline:
            try:
                # between two events: the child's copy of the state includes exactly these offsets
                child = ForkedChild.start(partial(self.checkpointer.write_report, prepared))
            except OSError as exc:
                log.warning("%s: cannot fork a checkpoint writer (%s); writing inline", self.name, exc)
            else:
                taken = self.due.events
                self._writing = Writing(child, taken, now, prepared.reset, prepared.bigger_is_better)
                return None
        try:
            published = self.checkpointer.write(prepared)
        except redis.RedisError as exc:
            return self._failed(str(exc), store_full=False)
        except StoreFull as exc:
            return self._failed(str(exc), store_full=True)
        except Fenced as exc:
            return self._fenced(str(exc))
        return self._published(published, prepared, self.due.events, self.clock())

    def collect(self, wait: bool = False) -> Written | None:
        """What became of the checkpoint a child wrote, once it has ended (``wait``: wait for
        it, killing it after ``WRITER_TIMEOUT``); None while it runs or when none does. A
        child that failed or was killed leaves the checkpoint due, retried a second later."""
        writing = self._writing
        if writing is None:
            return None
        result = writing.child.wait(WRITER_TIMEOUT) if wait else writing.child.poll()
        if result is None:
            return None
        self._writing = None
        if result.crash is not None:
            raise CheckpointFailed(
                f"the checkpoint writer of {self.name} failed ({result.status}):\n{result.crash}"
            )
        try:
            report = WriteReport.model_validate_json(result.report) if result.report is not None else None
        except ValidationError:  # cut short (its exit status was unknown): as if it sent nothing
            report = None
        if report is not None and report.published is not None:
            return self._published(report.published, writing, writing.events, writing.since)
        if report is not None and report.fenced is not None:
            return self._fenced(report.fenced)
        why = report.error if report is not None else f"its writer ended with {result.status}, no report"
        return self._failed(why or "no reason reported", store_full=report is not None and report.store_full)

    def abandon(self) -> None:
        """Reap a child still running (after an error in the trainer): no zombie is left."""
        if self._writing is not None:
            self._writing.child.wait(WRITER_TIMEOUT)
            self._writing = None

    def _failed(self, why: str, store_full: bool) -> Written:
        """A checkpoint Redis refused: retried a second later; a full Redis is said so (log,
        ``streamlearn_checkpoint_store_full``) until a checkpoint goes through."""
        self.telemetry.store_full(store_full)
        if store_full:
            log.error("checkpoint of %s refused, Redis is full: %s", self.name, why)
        else:
            log.error("checkpoint of %s failed, will retry: %s", self.name, why)
        self._retry_at = self.clock() + RETRY_SECONDS
        return Written()

    def _fenced(self, why: str) -> Written:
        """A checkpoint refused by the fencing epoch: another trainer owns the model now, so
        this writer writes nothing more (a trainer owning the model again makes a new one)."""
        self.telemetry.fenced()
        self._retry_at = float("inf")
        return Written(fenced=why)

    def _published(
        self, published: Published, taken: Prepared | Writing, events: int, since: float
    ) -> Written:
        """A version exists: the checkpointer's pointers, telemetry, what is due, the log."""
        meta = self.checkpointer.finish(published, taken.bigger_is_better)
        self.telemetry.checkpointed(meta, published.seconds, published.retained_bytes)
        self.telemetry.store_full(False)
        self.due.published(events, since)
        main = self.checkpointer.spec.main_metric
        log.info(
            "%s v%d: %d learned, %s %.4f (rolling %s)",
            self.name,
            meta.version,
            meta.n_learned,
            main,
            meta.metrics.get(main) or float("nan"),
            meta.rolling_metrics.get(main),
        )
        return Written(meta=meta, reset=taken.reset)
