"""One writer per model: two trainers, a standby taking over, a zombie fenced off (real Kafka and Redis)."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest
from river import datasets

from model_store.leases import Fenced, Leases
from model_store.snapshot import SnapshotMeta
from model_store.store import CheckpointStore
from stream.publish import publish
from tests.helpers.learning import learned, phishing_events, probe_answers
from tests.helpers.processes import Env, cli, stop, wait_until, write_spec

TTL = "2"  # seconds: short, so the tests wait little for an expiry
PROBE = [x for x, _ in datasets.Phishing().take(20)]


def chain(store: CheckpointStore, name: str, since: int = 0) -> list[SnapshotMeta]:
    """The retained versions from ``since`` on, oldest first, asserting each one's parent is the
    one before."""
    metas = [m for m in store.list_versions(name) if m.version >= since]
    for before, after in zip(metas, metas[1:], strict=False):
        assert after.parent == before.version, [(m.version, m.parent) for m in metas]
    return metas


def owner_and_second(
    env: Env, store: CheckpointStore, name: str
) -> tuple[subprocess.Popen, subprocess.Popen]:
    """Two trainers for one model: the first once it owns the model, then the second
    (log ``train2-NAME``), which can only be a standby while the first lives."""
    first = env.start_trainer(name, STREAMLEARN_TRAINER_LEASE_SECONDS=TTL)
    wait_until(lambda: owner_pid(store, name) == first.pid, timeout=60, what="the first trainer owns it")
    second = env.start(f"train2-{name}", "train", "--model", name, STREAMLEARN_TRAINER_LEASE_SECONDS=TTL)
    return first, second


def same_model(blob: bytes, events: list[dict]) -> bool:
    got, want = probe_answers(blob, events)
    return got == want


def owner_pid(store: CheckpointStore, name: str) -> int | None:
    holder = store.owner(name)
    return holder.pid if holder is not None else None


def test_the_lease_grants_one_owner_and_fences_a_stale_epoch(store: CheckpointStore, prefix: str):
    leases = Leases(store.client, prefix)
    first = leases.acquire("m", "a:1:x", ttl=5)
    assert first is not None and leases.acquire("m", "b:2:y", ttl=5) is None
    assert leases.acquire("m", "a:1:x", ttl=5) == first  # its own lease, renewed
    assert leases.holder("m").owner == "a:1:x" and leases.holder("m").epoch == first
    assert not leases.release("m", "b:2:y") and leases.release("m", "a:1:x")
    second = leases.acquire("m", "b:2:y", ttl=5)
    assert second == first + 1
    holder = leases.holder("m")
    assert not leases.renew("m", "a:1:x", first, 5, holder)  # the old owner cannot take it back
    meta = SnapshotMeta(model="m", task="classification", topic="m", n_learned=1, offsets={0: 1})
    with pytest.raises(Fenced, match=f"epoch {first}"):
        store.publish(meta, b"blob", keep=5, epoch=first)
    assert store.list_versions("m") == []
    assert store.publish(meta, b"blob", keep=5, epoch=second).version == 1


def test_two_trainers_for_one_model_make_one_chain_and_learn_each_event_once(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    events = phishing_events(1200)
    first, second = owner_and_second(env, store, name)
    wait_until(
        lambda: "standby; owned by" in env.log(f"train2-{name}"), timeout=60, what="the second is a standby"
    )

    publish(events[:600], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 600), timeout=60, what="600 learned by the owner")
    assert stop(first) == 0  # a clean stop: final checkpoint, lease released
    wait_until(lambda: owner_pid(store, name) == second.pid, timeout=10, what="the standby took over")
    publish(events[600:], name, env.kafka, progress=False)
    meta, blob = wait_until(lambda: learned(store, name, 1200), timeout=60, what="all learned")

    assert meta.offsets == {0: 1200}
    chain(store, name)
    assert same_model(blob, events)
    assert second.poll() is None


def test_sigkill_of_the_owner_the_standby_resumes_exactly_once(env: Env, store: CheckpointStore):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    events = phishing_events(1000)
    first, second = owner_and_second(env, store, name)
    publish(events[:500], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 500), timeout=60, what="500 learned")

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    publish(events[500:], name, env.kafka, progress=False)
    meta, blob = wait_until(lambda: learned(store, name, 1000), timeout=60, what="the standby learned on")

    assert owner_pid(store, name) == second.pid
    assert meta.offsets == {0: 1000}
    chain(store, name)
    assert same_model(blob, events)


def test_a_zombie_owner_is_fenced_and_nothing_it_learned_after_losing_the_lease_is_served(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    # count-driven checkpoints only, so the zombie holds unpublished events when it wakes
    write_spec(env.models_dir, name=name, topic=name, checkpoint={"every_events": 100, "every_seconds": 3600})
    events = phishing_events(800)
    zombie = env.start_trainer(name, STREAMLEARN_TRAINER_LEASE_SECONDS=TTL)
    wait_until(lambda: owner_pid(store, name) == zombie.pid, timeout=60, what="the first trainer owns it")
    publish(events[:350], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 300), timeout=60, what="300 learned")
    zombie_epoch = store.owner(name).epoch

    zombie.send_signal(signal.SIGSTOP)
    try:
        standby = env.start(f"train2-{name}", "train", "--model", name, STREAMLEARN_TRAINER_LEASE_SECONDS=TTL)
        wait_until(lambda: owner_pid(store, name) == standby.pid, timeout=30, what="the standby took over")
        publish(events[350:800], name, env.kafka, progress=False)
        wait_until(lambda: learned(store, name, 800), timeout=60, what="the standby learned everything")
    finally:
        zombie.send_signal(signal.SIGCONT)

    # Awake, the zombie learns what it fetched before its renewer notices; its checkpoint is refused.
    wait_until(
        lambda: "lease lost" in env.log(f"train-{name}") or "refused" in env.log(f"train-{name}"),
        timeout=30,
        what="the zombie noticed it lost the model",
    )
    wait_until(
        lambda: "standby; owned by" in env.log(f"train-{name}"), timeout=30, what="the zombie stepped back"
    )
    assert owner_pid(store, name) == standby.pid and store.owner(name).epoch > zombie_epoch
    metas = chain(store, name)
    newest = store.fetch_latest(name)
    assert newest[0].n_learned == 800 and same_model(newest[1], events)
    # No version after the hand-over holds anything but the standby's learning.
    assert [m.n_learned for m in metas] == sorted(m.n_learned for m in metas)
    assert zombie.poll() is None and standby.poll() is None


def test_status_and_the_api_show_who_trains_each_model(env: Env, store: CheckpointStore, port: int):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    trainer = env.start_trainer(name, STREAMLEARN_TRAINER_LEASE_SECONDS=TTL)
    publish(phishing_events(200), name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 200), timeout=60, what="200 learned")
    env.start_api(port)

    def trainer_field() -> dict | None:
        r = httpx.get(f"http://127.0.0.1:{port}/models/{name}", timeout=5)
        return r.json()["trainer"] if r.status_code == 200 else None

    shown = wait_until(trainer_field, timeout=30, what="the API showing the trainer")
    holder = store.owner(name)
    assert shown["pid"] == trainer.pid and shown["epoch"] == holder.epoch >= 1
    assert shown["last_checkpoint"] == store.latest_version(name)
    status = cli(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith(name))
    assert f"pid {trainer.pid}" in row and f" {holder.epoch} " in row, status.stdout

    assert stop(trainer) == 0  # releases the lease
    assert store.owner(name) is None
    wait_until(lambda: trainer_field() is None, timeout=10, what="the API showing nobody trains it")
    status = cli(env, "status", name)
    assert status.returncode == 1 and "NOBODY TRAINS IT" in status.stdout, status.stdout


def test_a_reset_is_honoured_by_the_owner_and_never_undone_after_it_is_killed(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    events = phishing_events(900)
    first, second = owner_and_second(env, store, name)
    publish(events[:400], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 400), timeout=60, what="400 learned")
    target = min(m.version for m in store.list_versions(name) if m.n_learned >= 100)
    base_learned = store.meta(name, target).n_learned
    store.request_reset(name, target, reason="bad labels")
    applied = wait_until(
        lambda: store.reset_request(name) is None and store.fetch_latest(name)[0],
        timeout=30,
        what="the reset applied",
    )
    assert applied.parent == target and applied.n_learned == base_learned  # the owner applied it

    first.send_signal(signal.SIGKILL)  # the one that applied the reset dies; the standby takes over
    first.wait(timeout=10)
    publish(events[400:], name, env.kafka, progress=False)
    wait_until(lambda: owner_pid(store, name) == second.pid, timeout=30, what="the standby took over")
    newest = wait_until(
        lambda: (m := store.fetch_latest(name)[0]) and m.n_learned == base_learned + 500 and m,
        timeout=60,
        what="the standby learning on from the reset lineage",
    )
    # every version after the reset descends from it: the replaced lineage never comes back
    after = chain(store, name, since=applied.version)
    assert after[-1].version == newest.version
    assert all(m.n_learned >= base_learned for m in after)
