"""`train --all` on several processes: the models are shared out, rebalanced when a member
leaves, and one model's crash stops no other (real Kafka and Redis, real processes)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import httpx

from model_store.store import CheckpointStore
from stream.local_services import free_port
from stream.publish import publish
from tests.helpers.learning import learned, phishing_events
from tests.helpers.processes import Env, stop, wait_until, write_spec

TTL = "2"


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def shares(store: CheckpointStore, models: list[str]) -> Counter:
    """How many models each train --all process owns (through its worker processes)."""
    owners = [store.owner(m) for m in models]
    return Counter(parent_of(h.pid) for h in owners if h is not None)


def test_three_members_share_six_models_and_even_out_when_one_leaves(env: Env, store: CheckpointStore):
    models = [f"{env.key_prefix}-{i}" for i in range(6)]
    for name in models:
        write_spec(env.models_dir, name=name, topic=name)
    publish(phishing_events(300), models[0], env.kafka, progress=False)
    members = [
        env.start(f"all-{i}", "train", "--all", STREAMLEARN_TRAINER_LEASE_SECONDS=TTL) for i in range(3)
    ]
    pids = {m.pid for m in members}
    wait_until(
        lambda: shares(store, models) == Counter(dict.fromkeys(pids, 2)),
        timeout=90,
        what="2/2/2",
    )
    wait_until(lambda: learned(store, models[0], 300), timeout=60, what="a model learning where it landed")

    assert stop(members[2], signal.SIGTERM, timeout=60) == 0  # its workers checkpoint and hand over
    rest = {members[0].pid, members[1].pid}
    wait_until(lambda: shares(store, models) == Counter(dict.fromkeys(rest, 3)), timeout=60, what="3/3")
    publish(phishing_events(400)[300:], models[0], env.kafka, progress=False)
    meta, _ = wait_until(lambda: learned(store, models[0], 400), timeout=60, what="learning after the moves")
    assert meta.offsets == {0: 400}  # every event once, whichever member learned it
    assert all(m.poll() is None for m in members[:2])


def test_a_crashed_worker_is_restarted_and_stops_no_other(env: Env, store: CheckpointStore):
    models = [f"{env.key_prefix}-a", f"{env.key_prefix}-b"]
    for name in models:
        write_spec(env.models_dir, name=name, topic=name)
    metrics_port = free_port()
    port = str(metrics_port)
    member = env.start(
        "all", "train", "--all", STREAMLEARN_TRAINER_LEASE_SECONDS=TTL, STREAMLEARN_METRICS_PORT=port
    )
    owners = wait_until(
        lambda: all(o := [store.owner(m) for m in models]) and o, timeout=60, what="both models owned"
    )
    crashed, other = owners[0].pid, owners[1].pid
    os.kill(crashed, signal.SIGKILL)
    restarted = wait_until(
        lambda: (h := store.owner(models[0])) and h.pid != crashed and h, timeout=30, what="a new worker"
    )
    assert parent_of(restarted.pid) == member.pid
    assert store.owner(models[1]).pid == other  # the other model's worker never stopped

    def restarts() -> str:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        return f'streamlearn_trainer_restarts_total{{model="{models[0]}"}} 1.0' in text and text

    text = wait_until(restarts, timeout=20, what="the restart counted")
    assert f'streamlearn_trainer_owns_model{{model="{models[1]}"}} 1.0' in text  # the workers' own metrics
    assert member.poll() is None


def test_a_model_whose_pipeline_raises_on_every_event_stops_nothing_else(env: Env, store: CheckpointStore):
    good, broken = f"{env.key_prefix}-good", f"{env.key_prefix}-broken"
    write_spec(env.models_dir, name=good, topic=good)
    write_spec(env.models_dir, name=broken, topic=broken)
    member = env.start("all", "train", "--all", STREAMLEARN_TRAINER_LEASE_SECONDS=TTL)
    wait_until(lambda: store.owner(good) and store.owner(broken), timeout=60, what="both models owned")
    broken_pid = store.owner(broken).pid
    # every event of `broken` makes its pipeline raise (StandardScaler cannot scale text)
    publish(
        ({"features": {"x": f"text {i}"}, "label": True} for i in range(200)),
        broken,
        env.kafka,
        progress=False,
    )
    publish(phishing_events(300), good, env.kafka, progress=False)
    wait_until(lambda: learned(store, good, 300), timeout=60, what="the good model learning on")
    assert store.owner(broken).pid == broken_pid  # its worker is still the one it was: nothing crashed
    assert member.poll() is None
