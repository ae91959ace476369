"""``streamlearn rebuild NAME``: re-learn a model from its topic's retained events with the
River and Python this process runs, and publish the result as a new lineage.

The way out when the newest checkpoint was written by another runtime (an upgrade of
River or Python: River's pickles do not load across versions). The events are read from
``--from-offset`` (default: the oldest retained) up to the high watermarks seen at the
start, and learned test-then-train by the trainer's own ``Learner``, in offset order per
partition, exactly as a trainer would have. The version published has no parent, records
``rebuilt_from`` (the version it replaces, its runtime, the offsets re-learned) and the
offsets it includes, so a trainer started afterwards resumes right after the rebuilt
events: each is learned exactly once. It is always served (the promotion gate compares
with a lineage this runtime may not even load); the old versions stay for audit until
retention drops them.

What a rebuild cannot re-learn: events retention already removed, and label-only events
(delayed labels join served predictions, which are not served again); it skips and counts
them, as it skips events a trainer dead-lettered (they are on ``<topic>.dlq`` already and
are not sent again).

It takes the model's lease as a trainer does (stream/ownership.py): it refuses to start
while a trainer (or another rebuild) owns the model, a trainer started meanwhile waits as
a standby, and its version is fenced like any checkpoint (refused if it lost the lease).
"""

from __future__ import annotations

import argparse
import bisect
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field

import redis
from kafka import TopicPartition
from kafka.errors import KafkaError
from tqdm import tqdm

from model_store.event_schema import Task
from model_store.feature_stats import summarize
from model_store.leases import Fenced
from model_store.snapshot import RebuiltFrom, SnapshotMeta, dump_parts
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore, StoreError
from stream.backoff import Backoff
from stream.checkpoints import Checkpointer
from stream.decoding import BadEvent, LabelOnly, decode_many
from stream.errors import StreamError
from stream.fetcher import Batch, Fetcher, fetch_or_restart
from stream.kafka_io import make_consumer
from stream.learner import Learner
from stream.ownership import Ownership
from stream.pipeline import validate_spec
from stream.settings import TrainerSettings

log = logging.getLogger(__name__)

EXIT_TRAINER_RUNNING = 75
"""Exit status when a trainer (or another rebuild) holds the model (EX_TEMPFAIL: try again
once it is stopped)."""


class RebuildError(StreamError, RuntimeError):
    """The rebuild cannot start or go on; the message says why and what to do."""


class TrainerRunning(RebuildError):
    """Someone trains the model: a rebuild beside it would fork its lineage."""


@dataclass
class Plan:
    """What to re-learn: per partition, the first offset and the high watermark at the start."""

    start: dict[int, int]
    end: dict[int, int]

    @property
    def total(self) -> int:
        return sum(self.end[p] - self.start[p] for p in self.end)


@dataclass
class Outcome:
    """What a rebuild learned and skipped."""

    learner: Learner
    offsets: dict[int, int]
    skipped: Counter[str] = field(default_factory=Counter)


def plan(spec: ModelSpec, settings: TrainerSettings, from_offset: int | None) -> Plan:
    """The offsets to re-learn: from ``from_offset`` (None: the oldest retained) on every
    partition, up to the high watermarks as they are now."""
    try:
        consumer = make_consumer(settings.kafka_bootstrap_servers, **settings.kafka_client_options())
    except KafkaError as exc:
        raise RebuildError(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
    try:
        partitions = consumer.partitions_for_topic(spec.topic)
        if not partitions:
            raise RebuildError(
                f"topic '{spec.topic}' of model '{spec.name}' does not exist: nothing to learn"
            )
        tps = [TopicPartition(spec.topic, p) for p in sorted(partitions)]
        low, high = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
    except KafkaError as exc:
        raise RebuildError(f"cannot read the offsets of topic '{spec.topic}': {exc}") from exc
    finally:
        consumer.close()
    start, end = {}, {}
    for tp in tps:
        first, last = low[tp], high[tp]
        if from_offset is not None and from_offset < first:
            raise RebuildError(
                f"partition {tp.partition} of '{spec.topic}' no longer holds offset {from_offset}: "
                f"retention kept {first}..{last - 1}; use --from-offset earliest or an offset >= {first}"
            )
        start[tp.partition] = first if from_offset is None else min(from_offset, last)
        end[tp.partition] = last
    result = Plan(start, end)
    if result.total == 0:
        raise RebuildError(
            f"topic '{spec.topic}' retains no event at or after the given offset "
            f"(high watermarks {end}): nothing to re-learn"
        )
    return result


def relearn(
    spec: ModelSpec,
    settings: TrainerSettings,
    todo: Plan,
    ownership: Ownership,
    progress: bool = True,
) -> Outcome:
    """Read the planned events with the trainer's fetcher and learn them test-then-train."""
    outcome = Outcome(Learner.from_spec(spec), dict(todo.start))
    offsets = outcome.offsets
    remaining = {p for p, end in todo.end.items() if offsets[p] < end}
    options = settings.librdkafka_options()
    fetcher = Fetcher(
        settings.kafka_bootstrap_servers, options, {spec.topic: dict(offsets)}, decode={spec.topic: spec.task}
    )
    bar = tqdm(total=todo.total, unit="event", desc=f"rebuild {spec.name}", disable=not progress)
    backoff = Backoff()
    fetcher.start()
    try:
        while remaining:
            if ownership.lost.is_set():  # a trainer took the model: publishing would be refused
                raise Fenced(spec.name, ownership.epoch or 0, None)
            batches = fetch_or_restart(
                fetcher, 0.5, lambda: {spec.topic: dict(offsets)}, backoff, ownership.lost, spec.name
            )
            for batch in batches or ():
                partition = batch.partition
                if partition not in remaining:
                    continue
                end = todo.end[partition]
                bar.update(_learn(batch, end, outcome, spec.task))
                if offsets[partition] >= end or batch.offsets[-1] >= end:  # all below end seen
                    offsets[partition] = end
                    remaining.discard(partition)
    finally:
        fetcher.stop()
        bar.close()
    return outcome


def _learn(batch: Batch, end: int, outcome: Outcome, task: Task) -> int:
    """Test-then-train the batch's records from the partition's next offset up to ``end``;
    return how many records that was."""
    positions, partition = batch.offsets, batch.partition
    i = bisect.bisect_left(positions, outcome.offsets[partition])
    stop = bisect.bisect_left(positions, end)
    if i >= stop:
        return 0
    events = batch.events if batch.events is not None else decode_many(batch.values, task)
    learn_many, first = outcome.learner.learn_many, i
    while i < stop:
        done, error = learn_many(events, i, stop)
        if done == stop:
            break
        event = events[done]
        if error is not None:
            outcome.skipped["refused by the model"] += 1
        elif type(event) is LabelOnly:
            outcome.skipped["label-only (delayed labels are not joined again)"] += 1
        elif isinstance(event, BadEvent):
            outcome.skipped["not an event (dead-lettered when first consumed)"] += 1
        i = done + 1
    outcome.offsets[partition] = positions[stop - 1] + 1
    return stop - first


def publish_rebuilt(
    spec: ModelSpec,
    store: CheckpointStore,
    signing_key: bytes | None,
    outcome: Outcome,
    todo: Plan,
    replaces: SnapshotMeta | None,
    epoch: int | None,
) -> SnapshotMeta:
    """Publish the re-learned model as the first version of a new lineage (parent none),
    served at once, fenced by the rebuild's lease."""
    checkpointer = Checkpointer(spec, store, signing_key)  # parent None: a new lineage
    rebuilt_from = RebuiltFrom(
        version=replaces.version if replaces is not None else None,
        python_version=replaces.python_version if replaces is not None else None,
        river_version=replaces.river_version if replaces is not None else None,
        from_offsets=dict(todo.start),
        to_offsets=dict(todo.end),
    )
    prepared = checkpointer.prepare(outcome.learner, outcome.offsets, rebuilt_from=rebuilt_from)
    meta = prepared.meta
    if prepared.sample is not None:
        cfg = spec.data_drift
        stats = summarize(list(prepared.sample), cfg.bins, max_features=cfg.max_features)
        meta = meta.model_copy(update={"feature_stats": stats})
    artefact, training = dump_parts(prepared.state)
    return store.publish(
        meta,
        artefact,
        keep=spec.checkpoint.keep,
        signing_key=signing_key,
        promote=True,
        epoch=epoch,
        training=training,
        max_bytes=spec.checkpoint.max_bytes,
    )


def rebuild(
    spec: ModelSpec,
    settings: TrainerSettings,
    store: CheckpointStore,
    from_offset: int | None = None,
    progress: bool = True,
) -> tuple[SnapshotMeta, Outcome]:
    """Take the model's lease, re-learn it from its topic, publish a new lineage, release."""
    validate_spec(spec)
    key = settings.signing_key.get_secret_value().encode() if settings.signing_key else None
    ttl = settings.trainer_lease_seconds
    ownership = Ownership(store.leases, spec.name, ttl, settings.trainer_lease_renew_seconds)
    if not ownership.try_acquire():
        holder = store.owner(spec.name)
        since = f"{holder.since:%Y-%m-%d %H:%M:%S} UTC" if holder else "?"
        who = f"pid {holder.pid} on {holder.host} (since {since})" if holder else "?"
        raise TrainerRunning(
            f"a trainer or rebuild, {who}, owns model '{spec.name}': stop it before rebuilding "
            f"(the lease of one that died expires within {ttl:g} s)"
        )
    try:
        latest = store.latest_version(spec.name)
        replaces = store.meta(spec.name, latest) if latest is not None else None
        todo = plan(spec, settings, from_offset)
        log.info(
            "%s: re-learning offsets %s up to %s (%d records) with this runtime",
            spec.name,
            todo.start,
            todo.end,
            todo.total,
        )
        outcome = relearn(spec, settings, todo, ownership, progress)
        meta = publish_rebuilt(spec, store, key, outcome, todo, replaces, ownership.epoch)
    finally:
        ownership.release()
    return meta, outcome


def rebuild_command(args: argparse.Namespace, settings: TrainerSettings, spec: ModelSpec) -> int:
    """``streamlearn rebuild NAME [--from-offset earliest|N]`` (wiring and what to print)."""
    store = CheckpointStore.from_settings(settings)
    try:
        meta, outcome = rebuild(spec, settings, store, args.from_offset, progress=True)
    except (TrainerRunning, Fenced) as exc:
        print(f"error: {exc}; nothing was published", file=sys.stderr)
        return EXIT_TRAINER_RUNNING
    except (RebuildError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"error: Redis: {exc}; nothing was published", file=sys.stderr)
        return 1
    replaced = meta.rebuilt_from.version if meta.rebuilt_from is not None else None
    print(
        f"{spec.name}: published v{meta.version}, a new lineage (parent none"
        f"{f', replaces v{replaced}' if replaced is not None else ''}), {meta.n_learned} events learned "
        f"with Python {meta.python_version} / River {meta.river_version}; offsets {meta.offsets}"
    )
    for why, n in sorted(outcome.skipped.items()):
        print(f"  skipped {n}: {why}")
    pinned = store.pinned(spec.name)
    if pinned is not None:
        print(f"  v{pinned} is pinned: replicas keep serving it until `streamlearn unpin {spec.name}`")
    print(f"  start the trainer with this image: it resumes after offsets {meta.offsets}")
    return 0
