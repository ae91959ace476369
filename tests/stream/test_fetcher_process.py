"""The fetcher process (stream/fetcher.py): restarted when it dies, gone when the trainer is."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from model_store.store import CheckpointStore
from stream.publish import publish
from tests.helpers.learning import EVENTS, learned, probe_answers
from tests.helpers.processes import Env, wait_until, write_spec


def fetchers(trainer_pid: int) -> list[int]:
    """Child processes of the trainer running the fetcher (python -m stream.fetcher)."""
    pids = []
    for task in Path(f"/proc/{trainer_pid}/task").glob("*"):
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        for child in map(int, children):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"stream.fetcher" in cmdline:
                pids.append(child)
    return pids


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_fetcher_is_started_again_and_nothing_is_lost_or_repeated(
    env: Env, store: CheckpointStore, prefix: str
):
    name = prefix
    write_spec(env.models_dir, name=name, topic=name)
    trainer = env.start_trainer(name)
    publish(EVENTS[:400], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 400), timeout=60, what="first 400 learned")
    (first,) = wait_until(lambda: fetchers(trainer.pid), what="the fetcher process")
    os.kill(first, signal.SIGKILL)

    publish(EVENTS[400:], name, env.kafka, progress=False)
    meta, blob = wait_until(lambda: learned(store, name, 900), timeout=90, what="all 900 learned")
    assert meta.offsets == {0: 900}
    got, want = probe_answers(blob, EVENTS)
    assert got == want
    (second,) = wait_until(lambda: fetchers(trainer.pid), what="a new fetcher process")
    assert second != first
    assert "starting the fetcher again" in env.log(f"train-{name}")


def test_the_fetcher_exits_when_its_trainer_is_killed(env: Env, prefix: str):
    name = prefix
    write_spec(env.models_dir, name=name, topic=name)
    trainer = env.start_trainer(name)
    (fetcher,) = wait_until(lambda: fetchers(trainer.pid), what="the fetcher process")
    trainer.kill()
    trainer.wait()
    wait_until(lambda: not running(fetcher), timeout=10, what="the orphaned fetcher to exit")
