"""Checkpoints written by forked children, on the real Kafka and Redis.

The trainer runs in a thread of the test process (as under ``train --all``), so the test
sees its children: every fork is recorded, and each must be gone (reaped, no zombie)
before the next one starts and after the trainer stops.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from river import datasets

from model_store.specs import ModelSpec
from model_store.store import CheckpointStore
from stream.local_services import KafkaServer, RedisServer
from stream.publish import publish
from stream.settings import TrainerSettings
from stream.trainer import Trainer
from tests.helpers.factories import model_spec
from tests.helpers.learning import learned, probe_answers
from tests.helpers.processes import SIGNING_KEY, wait_until

EVENTS = [{"features": x, "label": y} for x, y in datasets.Phishing().take(1000)]
PROBE = [e["features"] for e in EVENTS[:20]]


class Forks:
    """Records every fork of this process; notes any earlier child still present at a fork."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.overlaps: list[int] = []

    def wrap(self, fork: Callable[[], int]) -> Callable[[], int]:
        def recording_fork() -> int:
            self.overlaps += [p for p in self.pids if Path(f"/proc/{p}").exists()]
            pid = fork()
            if pid:
                self.pids.append(pid)
            return pid

        return recording_fork

    def all_reaped(self) -> bool:
        for pid in self.pids:
            try:
                os.waitpid(pid, os.WNOHANG)  # a zombie of ours would be reaped here: (pid, status)
            except ChildProcessError:
                continue
            return False
        return True


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Forks:
    recorder = Forks()
    monkeypatch.setattr(os, "fork", recorder.wrap(os.fork))
    return recorder


def spec_for(name: str, every_events: int = 100) -> ModelSpec:
    return model_spec(
        name,
        pipeline=["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}],
        rolling_window=100,
        checkpoint={"every_events": every_events, "every_seconds": 0.2, "keep": 100, "fork": True},
    )


def settings_for(kafka: KafkaServer, redis_url: str, prefix: str) -> TrainerSettings:
    return TrainerSettings(
        kafka_bootstrap_servers=kafka.bootstrap,
        redis_url=redis_url,
        key_prefix=prefix,
        signing_key=SIGNING_KEY,
        metrics_port=0,
    )


@contextmanager
def running(trainer: Trainer) -> Iterator[None]:
    """The trainer on a thread of this process, as ``train --all`` runs it; stopped on exit."""
    stop = threading.Event()
    thread = threading.Thread(target=trainer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: trainer.dead_letters is not None, timeout=60, what="the trainer connected")
        yield
    finally:
        stop.set()
        thread.join(120)
        assert not thread.is_alive(), "the trainer did not stop"


def test_forked_checkpoints_keep_up_with_learning_and_follow_each_other_exactly_once(
    kafka: KafkaServer, redis_server: RedisServer, prefix: str, forks: Forks
):
    name = prefix
    store = CheckpointStore.from_url(redis_server.url, prefix)
    trainer = Trainer(spec_for(name), settings_for(kafka, redis_server.url, prefix), store)
    assert trainer.fork
    with running(trainer):
        for n in range(100, 1001, 100):  # a live stream (300 events/s), a checkpoint awaited per 100
            publish(EVENTS[n - 100 : n], name, kafka.bootstrap, 300.0, progress=False)
            meta, blob = wait_until(lambda n=n: learned(store, name, n), timeout=60, what=f"{n} learned")
    assert forks.overlaps == []  # at most one child at a time, each reaped before the next
    assert forks.all_reaped()  # none left after stop, not even a zombie

    versions = store.list_versions(name)
    assert len(versions) >= 5 and len(forks.pids) >= len(versions)  # checkpoints while events arrive
    for before, after in zip(versions, versions[1:], strict=False):
        assert after.parent == before.version  # each child's result moved the parent pointer
        assert before.n_learned < after.n_learned
    assert all(m.offsets == {0: m.n_learned} for m in versions)  # no event learned twice or skipped
    newest = versions[-1]
    assert (newest.version, newest.n_learned) == (meta.version, 1000)
    assert trainer.checkpointer.parent == newest.version == trainer.telemetry.version
    assert trainer.learner.monitors.version == newest.version
    got, want = probe_answers(blob, EVENTS)
    assert got == want


class StallingStore(CheckpointStore):
    """While ``stall`` exists, a forked writer stops inside its transaction (blob and metadata
    queued, EXEC not sent), writes its pid to ``stalled`` and waits to be killed."""

    def __init__(self, url: str, prefix: str, stall: Path, stalled: Path) -> None:
        super().__init__(CheckpointStore.from_url(url, prefix).client, prefix)
        self.url, self.stall, self.stalled, self.owner = url, stall, stalled, os.getpid()

    def with_own_pool(self) -> StallingStore:
        return StallingStore(self.url, self.prefix, self.stall, self.stalled)

    def _transaction(self, body, *watched: str) -> None:
        if os.getpid() == self.owner or not self.stall.exists():
            return super()._transaction(body, *watched)
        with self.client.pipeline(transaction=True) as tx:
            tx.watch(*watched)
            body(tx)
            self.stalled.write_text(str(os.getpid()))
            while True:
                time.sleep(0.05)


def test_a_writer_killed_mid_checkpoint_leaves_no_partial_version_and_is_retried(
    kafka: KafkaServer, redis_server: RedisServer, prefix: str, forks: Forks, tmp_path: Path
):
    name = prefix
    stall, stalled = tmp_path / "stall", tmp_path / "stalled"
    store = StallingStore(redis_server.url, prefix, stall, stalled)
    # checkpoints by time only: one due by count would wait for the stalled writer
    settings = settings_for(kafka, redis_server.url, prefix)
    trainer = Trainer(spec_for(name, every_events=10_000), settings, store)
    k = store.keys(name)
    with running(trainer):
        publish(EVENTS[:300], name, kafka.bootstrap, progress=False)
        before, _ = wait_until(lambda: learned(store, name, 300), timeout=60, what="300 learned")

        stall.touch()
        publish(EVENTS[300:400], name, kafka.bootstrap, progress=False)
        wait_until(stalled.exists, timeout=30, what="a writer stalled inside its transaction")
        pid = int(stalled.read_text())
        assert trainer.writer_pid == pid
        doomed = int(store.client.get(k.next_version))  # the number its INCR allocated

        publish(EVENTS[400:600], name, kafka.bootstrap, progress=False)
        wait_until(lambda: trainer.learner.n_learned == 600, timeout=30, what="learning past the writer")
        assert trainer.writer_pid == pid  # still the stalled one: no second child meanwhile

        stall.unlink()  # the retry must go through
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: trainer.writer_pid != pid, timeout=30, what="the trainer reaping its writer")
        with store.client.pipeline(transaction=True) as tx:  # one consistent view of the model's keys
            tx.zrange(k.versions, 0, -1)
            tx.keys(k.meta(0).replace(":v:0:meta", ":v:*"))
            tx.get(k.latest)
            indexed_raw, keys_raw, latest = tx.execute()
        indexed = {int(v) for v in indexed_raw}
        assert doomed not in indexed and int(latest) in indexed
        assert {key.decode() for key in keys_raw} == {
            f(v) for v in indexed for f in (k.meta, k.blob, k.training)
        }

        after, blob = wait_until(lambda: learned(store, name, 600), timeout=60, what="the retried checkpoint")
    assert after.parent == before.version and after.version > doomed
    assert after.offsets == {0: 600}
    got, want = probe_answers(blob, EVENTS[:600])
    assert got == want
    assert forks.overlaps == [] and forks.all_reaped()
