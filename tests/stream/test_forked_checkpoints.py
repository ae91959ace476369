"""The trainer's forked checkpoints, without Kafka or Redis: a store that publishes into a
folder, and whose forked writer waits until the test lets it go.

If the trainer wrote inline, it would wait in ``publish`` for a release that the test
only sends after the trainer learned more events: the writer's wait would run out and the
test fail. So learning while a checkpoint is written is shown by counts, never by time.
"""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from river import datasets

from model_store.snapshot import SnapshotMeta, load_state, sign
from stream.fetcher import Batch
from stream.learner import Learner
from stream.settings import TrainerSettings
from stream.trainer import CheckpointFailed, Trainer
from tests.helpers.factories import model_spec

EVENTS = list(datasets.Phishing().take(400))
RECORDS = [
    SimpleNamespace(value=orjson.dumps({"features": x, "label": y}), key=None, offset=i, timestamp=i)
    for i, (x, y) in enumerate(EVENTS)
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowStore:
    """Publishes versions as files; a writer first waits (30 s at most) for one release."""

    prefix = "fake"

    def __init__(self, root: Path, fail_with: Exception | None = None) -> None:
        self.root = root
        self.fail_with = fail_with
        self._release_r, self._release_w = os.pipe()

    def release(self) -> None:
        os.write(self._release_w, b"x")

    def with_own_pool(self) -> SlowStore:
        return self

    def promoted(self, model: str) -> None:
        return None

    def latest_version(self, model: str) -> None:
        return None

    def reset_request(self, model: str) -> None:
        return None

    def append_metric_point(self, model: str, point: dict) -> None:
        pass

    def publish(
        self, meta: SnapshotMeta, blob: bytes, keep: int, signing_key=None, training=None, **_
    ) -> SnapshotMeta:
        if not select.select([self._release_r], [], [], 30)[0]:
            raise TimeoutError("never released: the trainer did not learn on while this was written")
        os.read(self._release_r, 1)
        if self.fail_with is not None:
            raise self.fail_with
        version = len(list(self.root.glob("v*.meta"))) + 1
        meta = sign(meta.model_copy(update={"version": version}), blob, signing_key, training)
        (self.root / f"v{version}.blob").write_bytes(blob)
        (self.root / f"v{version}.training").write_bytes(training)
        (self.root / f"v{version}.meta").write_text(meta.model_dump_json())
        return meta

    def retained_bytes(self, model: str) -> int:
        return sum(p.stat().st_size for p in self.root.glob("v*") if p.suffix != ".meta")

    def version(self, n: int) -> tuple[SnapshotMeta, dict]:
        meta = SnapshotMeta.model_validate_json((self.root / f"v{n}.meta").read_text())
        blob, training = ((self.root / f"v{n}.{part}").read_bytes() for part in ("blob", "training"))
        return meta, load_state(meta, blob, None, training)

    def versions(self) -> list[int]:
        return sorted(int(p.stem[1:]) for p in self.root.glob("v*.meta"))


def make_trainer(store: SlowStore, clock: Clock, fork: bool = True) -> Trainer:
    spec = model_spec("clicks", checkpoint={"every_events": 100, "every_seconds": 3600})
    return Trainer(spec, TrainerSettings(signing_key="k", metrics_port=0), store, clock=clock, fork=fork)


def learn(trainer: Trainer, start: int, stop: int) -> None:
    records = RECORDS[start:stop]
    trainer.step(
        [
            Batch(
                "clicks",
                0,
                [r.offset for r in records],
                [r.key for r in records],
                [r.value for r in records],
                [r.timestamp for r in records],
                None,
            )
        ]
    )


def reference(n: int) -> Learner:
    spec = make_trainer(SlowStore(Path("/nonexistent")), Clock(), fork=False).spec
    learner = Learner.from_spec(spec)
    for x, y in EVENTS[:n]:
        learner.learn_one(x, y)
    return learner


def test_the_trainer_learns_while_a_forked_child_writes_the_checkpoint(tmp_path: Path):
    store, clock = SlowStore(tmp_path), Clock()
    trainer = make_trainer(store, clock)
    learn(trainer, 0, 100)  # the 100th event makes a checkpoint due: a child forks
    writer = trainer.writer_pid
    assert writer is not None and store.versions() == []

    learn(trainer, 100, 180)  # while the child waits in publish
    clock.now += 4000  # a checkpoint due by time meanwhile does not wait for the child either
    learn(trainer, 180, 190)
    assert trainer.learner.n_learned == 190 and trainer.offsets == {0: 190}
    assert trainer.writer_pid == writer  # at most one child

    store.release()
    assert trainer.collect_checkpoint(wait=True)
    meta, state = store.version(1)
    assert (meta.n_learned, meta.offsets, meta.parent) == (100, {0: 100}, None)
    assert state["n_learned"] == 100  # the state is the one the offsets include: fork copied it
    probe = [x for x, _ in EVENTS[300:320]]
    model, expected = state["model"], reference(100).model
    assert [model.predict_proba_one(x) for x in probe] == [expected.predict_proba_one(x) for x in probe]

    assert trainer.checkpointer.parent == 1  # the parent follows the child's result
    assert meta.feature_stats and trainer.checkpointer.feature_stats == meta.feature_stats  # the child's
    assert trainer.telemetry.version == 1 and trainer.learner.monitors.version == 1
    assert trainer.due.events == 90  # events learned while the child wrote still count
    assert trainer.writer_pid is None

    store.release()
    learn(trainer, 190, 195)  # the one due by time is taken after this poll's records
    assert trainer.collect_checkpoint(wait=True)
    meta, state = store.version(2)
    assert (meta.n_learned, meta.offsets, meta.parent, state["n_learned"]) == (195, {0: 195}, 1, 195)
    assert meta.feature_stats == store.version(1)[0].feature_stats  # not due again after 95 events
    assert trainer.checkpointer.parent == 2 and trainer.due.events == 0


def test_checkpoints_due_by_count_fall_exactly_every_n_events(tmp_path: Path):
    store, clock = SlowStore(tmp_path), Clock()
    trainer = make_trainer(store, clock)
    for _ in range(3):
        store.release()
    learn(trainer, 0, 350)  # at 200 and 300 the trainer waits for the previous child
    assert trainer.collect_checkpoint(wait=True)
    metas = [store.version(n)[0] for n in store.versions()]
    assert [(m.n_learned, m.offsets[0], m.parent) for m in metas] == [
        (100, 100, None),
        (200, 200, 1),
        (300, 300, 2),
    ]
    assert trainer.checkpointer.parent == 3 and trainer.due.events == 50


def test_a_killed_writer_publishes_nothing_and_the_checkpoint_is_retried(tmp_path: Path):
    store, clock = SlowStore(tmp_path), Clock()
    trainer = make_trainer(store, clock)
    learn(trainer, 0, 100)
    os.kill(trainer.writer_pid, signal.SIGKILL)
    assert trainer.collect_checkpoint(wait=True)
    assert store.versions() == [] and trainer.checkpointer.parent is None
    assert trainer.due.events == 100  # nothing was published: still due

    learn(trainer, 100, 150)
    assert trainer.writer_pid is None  # retried a second later, not at once

    clock.now += 1.5
    store.release()
    learn(trainer, 150, 160)
    assert trainer.collect_checkpoint(wait=True)
    meta, state = store.version(1)
    assert (meta.n_learned, meta.offsets, state["n_learned"]) == (151, {0: 151}, 151)
    assert trainer.checkpointer.parent == 1 and trainer.due.events == 9


def test_the_final_checkpoint_waits_for_the_writer_then_publishes_the_rest(tmp_path: Path):
    store, clock = SlowStore(tmp_path), Clock()
    trainer = make_trainer(store, clock)
    learn(trainer, 0, 130)
    store.release()
    store.release()
    trainer.checkpoint(force=True)  # what stopping does: wait for the child, then inline
    assert trainer.writer_pid is None
    first, second = store.version(1)[0], store.version(2)[0]
    assert (first.n_learned, second.n_learned, second.parent) == (100, 130, 1)
    assert trainer.checkpointer.parent == 2 and trainer.due.events == 0


def test_inline_checkpoints_still_work(tmp_path: Path):
    store, clock = SlowStore(tmp_path), Clock()
    trainer = make_trainer(store, clock, fork=False)
    store.release()
    learn(trainer, 0, 100)
    assert trainer.writer_pid is None
    assert store.version(1)[0].offsets == {0: 100} and trainer.checkpointer.parent == 1
    assert trainer.due.events == 0


def test_a_writer_failing_with_a_bug_stops_the_trainer(tmp_path: Path):
    store, clock = SlowStore(tmp_path, fail_with=ValueError("not picklable here")), Clock()
    trainer = make_trainer(store, clock)
    learn(trainer, 0, 100)
    store.release()
    with pytest.raises(CheckpointFailed, match="ValueError: not picklable here"):
        trainer.collect_checkpoint(wait=True)
    assert trainer.writer_pid is None
