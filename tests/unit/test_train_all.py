"""The ``train --all`` supervisor: one stop flag for every trainer thread, a heartbeat while all run."""

from __future__ import annotations

import threading
from pathlib import Path

from model_store.snapshot import Runtime, RuntimeMismatch, running_runtime
from stream.train_all import Worker, supervise
from stream.trainer import EXIT_INCOMPATIBLE
from tests.helpers.processes import wait_until


def waits_then_records(finished: list[str], name: str):
    def work(stop: threading.Event) -> None:
        stop.wait()
        finished.append(name)  # stands for the final checkpoint

    return work


def test_stop_ends_every_worker_cleanly_and_heartbeat_shows_liveness(tmp_path: Path):
    heartbeat = tmp_path / "alive"
    stop = threading.Event()
    finished: list[str] = []
    workers = [Worker(n, waits_then_records(finished, n), stop) for n in ("a", "b")]
    seen = []

    def operator() -> None:
        seen.append(wait_until(heartbeat.exists, timeout=30, what="heartbeat file"))
        stop.set()  # what SIGTERM does

    threading.Thread(target=operator, daemon=True).start()
    assert supervise(workers, stop, heartbeat, interval=0.05) == 0
    assert seen == [True]
    assert sorted(finished) == ["a", "b"]
    assert not heartbeat.exists()  # a stopped set must not look alive


def test_a_failing_worker_stops_the_others_and_fails_the_process(tmp_path: Path):
    stop = threading.Event()
    finished: list[str] = []

    def crashes(stop: threading.Event) -> None:
        raise RuntimeError("broken model")

    workers = [Worker("ok", waits_then_records(finished, "ok"), stop), Worker("bad", crashes, stop)]
    assert supervise(workers, stop, tmp_path / "alive", interval=0.05) == 1
    assert stop.is_set()
    assert finished == ["ok"]  # the healthy trainer still wrote its final checkpoint
    assert isinstance(workers[1].error, RuntimeError)
    assert not (tmp_path / "alive").exists()


def test_a_worker_that_returns_on_its_own_fails_the_process():
    stop = threading.Event()
    finished: list[str] = []
    workers = [Worker("ok", waits_then_records(finished, "ok"), stop), Worker("quits", lambda s: None, stop)]
    assert supervise(workers, stop, interval=0.05) == 1
    assert finished == ["ok"]


def refuses(stop: threading.Event) -> None:
    """What a trainer does when its newest checkpoint was written by another River."""
    raise RuntimeMismatch("old", 7, Runtime("3.11", "0.19.0"), running_runtime())


def test_a_refused_model_leaves_the_others_training_and_the_heartbeat_fresh(tmp_path: Path):
    heartbeat = tmp_path / "alive"
    stop = threading.Event()
    finished: list[str] = []
    workers = [Worker("ok", waits_then_records(finished, "ok"), stop), Worker("old", refuses, stop)]
    touched_after_refusal = []

    def operator() -> None:
        wait_until(lambda: not workers[1].is_alive(), timeout=30, what="the refusing worker ended")
        heartbeat.unlink(missing_ok=True)  # only a supervisor still running touches it again
        touched_after_refusal.append(wait_until(heartbeat.exists, timeout=30, what="heartbeat touched"))
        stop.set()

    threading.Thread(target=operator, daemon=True).start()
    assert supervise(workers, stop, heartbeat, interval=0.05) == 0
    assert touched_after_refusal == [True]
    assert finished == ["ok"]
    assert isinstance(workers[1].refused, RuntimeMismatch) and workers[1].error is None


def test_every_model_refused_exits_at_once_with_the_incompatible_status():
    stop = threading.Event()
    workers = [Worker("a", refuses, stop), Worker("b", refuses, stop)]
    assert supervise(workers, stop, interval=0.05) == EXIT_INCOMPATIBLE == 78
    assert stop.is_set()
