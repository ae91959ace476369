"""Upgrading River or Python: the trainer refuses a checkpoint another runtime wrote, once and
clearly; ``streamlearn rebuild`` re-learns the model as a new lineage; on real Kafka and Redis."""

from __future__ import annotations

import pickle

import httpx
import river
from prometheus_client.parser import text_string_to_metric_families
from river import datasets

from model_store.snapshot import RebuiltFrom, python_version, sign
from model_store.store import CheckpointStore
from stream.local_services import free_port
from stream.publish import publish
from stream.rebuild import EXIT_TRAINER_RUNNING
from stream.trainer import EXIT_INCOMPATIBLE
from tests.helpers.learning import learned, phishing_events, plain_river
from tests.helpers.processes import SIGNING_KEY, Env, stop, wait_until, write_spec

OLD_RIVER = "0.1.0"
PROBE = [x for x, _ in datasets.Phishing().take(25)]


def train_then_forge(env: Env, store: CheckpointStore, name: str, n: int) -> int:
    """Let a real trainer learn the ``n`` events published so far, stop it, and rewrite its
    newest checkpoint's metadata as River ``OLD_RIVER`` would have written it (signed again
    with the deployment's key, so only the runtime differs). Returns that version."""
    trainer = env.start(f"train-{name}-old", "train", "--model", name)
    wait_until(lambda: learned(store, name, n), timeout=60, what=f"{n} events learned")
    assert stop(trainer) == 0
    version = store.latest_version(name)
    meta, blob = store.fetch(name, version)
    forged = sign(meta.model_copy(update={"river_version": OLD_RIVER}), blob, SIGNING_KEY.encode())
    store.client.set(store.keys(name).meta(version), forged.model_dump_json())
    return version


def test_a_checkpoint_of_another_river_stops_the_trainer_once_naming_both_versions_and_the_ways_out(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    publish(phishing_events(200), name, env.kafka, progress=False)
    old = train_then_forge(env, store, name, 200)

    proc = env.start("train-upgraded", "train", "--model", name)
    assert proc.wait(timeout=60) == EXIT_INCOMPATIBLE == 78
    log = env.log("train-upgraded")
    assert f"{name}: cannot resume from v{old}" in log, log
    assert f"written by Python {python_version()} / River {OLD_RIVER}" in log, log
    assert f"runs Python {python_version()} / River {river.__version__}" in log, log
    assert "run the image it was written with" in log and f"`streamlearn rebuild {name}`" in log, log
    assert "Traceback" not in log, log
    assert log.count("cannot resume from") == 1, log
    assert store.latest_version(name) == old  # nothing learned, nothing published
    assert store.owner(name) is None  # lease released: a rebuild may start at once


def test_train_all_keeps_training_the_other_models_and_reports_the_refused_one_as_a_metric(
    env: Env, store: CheckpointStore
):
    old_model, other = f"{env.key_prefix}a", f"{env.key_prefix}b"
    write_spec(env.models_dir, name=old_model, topic=old_model)
    publish(phishing_events(100), old_model, env.kafka, progress=False)
    train_then_forge(env, store, old_model, 100)
    write_spec(env.models_dir, name=other, topic=other)
    metrics_port = free_port()

    proc = env.start("train-all", "train", "--all", STREAMLEARN_METRICS_PORT=str(metrics_port))
    publish(phishing_events(150), other, env.kafka, progress=False)
    wait_until(lambda: learned(store, other, 150), timeout=60, what="the other model learning on")

    def refused() -> list:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
        return [
            s
            for family in text_string_to_metric_families(text)
            if family.name == "streamlearn_checkpoint_incompatible"
            for s in family.samples
        ]

    samples = wait_until(refused, timeout=30, what="streamlearn_checkpoint_incompatible")
    assert [(s.labels, s.value) for s in samples] == [
        (
            {
                "model": old_model,
                "checkpoint_python": python_version(),
                "checkpoint_river": OLD_RIVER,
                "running_python": python_version(),
                "running_river": river.__version__,
            },
            1.0,
        )
    ]
    assert proc.poll() is None  # still training the other model
    assert stop(proc) == 0
    assert "Traceback" not in env.log("train-all")


def test_rebuild_relearns_the_retained_events_as_a_new_lineage_that_the_trainer_resumes_exactly_once(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    rebuilt = phishing_events(1250)  # all of Phishing
    later = rebuilt[:50]  # learned again after the rebuild, as new events
    publish(rebuilt[:300], name, env.kafka, progress=False)
    old = train_then_forge(env, store, name, 300)
    publish(rebuilt[300:], name, env.kafka, progress=False)

    proc = env.start("rebuild", "rebuild", name)
    assert proc.wait(timeout=120) == 0, env.log("rebuild")
    out = env.log("rebuild")
    assert "1250/1250" in out, out  # the progress bar reached the high watermark seen at start
    meta, blob = store.fetch_latest(name)
    assert meta.parent is None and meta.n_learned == 1250 and meta.offsets == {0: 1250}
    assert meta.river_version == river.__version__
    assert meta.rebuilt_from == RebuiltFrom(
        version=old,
        python_version=python_version(),
        river_version=OLD_RIVER,
        from_offsets={0: 0},
        to_offsets={0: 1250},
    )
    assert old in store.version_numbers(name)  # kept for audit until retention
    assert store.served_pointer(name).version == meta.version
    model, reference = pickle.loads(blob)["model"], plain_river(rebuilt)
    for x in PROBE:
        assert model.predict_proba_one(x) == reference.predict_proba_one(x)

    env.start_trainer(name)
    publish(later, name, env.kafka, progress=False)
    after, blob = wait_until(lambda: learned(store, name, 1300), timeout=60, what="1300 events learned")
    assert after.offsets == {0: 1300}
    first_after = min(v for v in store.version_numbers(name) if v > meta.version)
    assert store.meta(name, first_after).parent == meta.version  # the trainer continued the new lineage
    model, reference = pickle.loads(blob)["model"], plain_river(rebuilt + later)
    for x in PROBE:
        assert model.predict_proba_one(x) == reference.predict_proba_one(x)


def test_rebuild_refuses_while_a_trainer_runs_the_model(env: Env, store: CheckpointStore):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    publish(phishing_events(100), name, env.kafka, progress=False)
    trainer = env.start_trainer(name)
    lease = wait_until(lambda: store.owner(name), timeout=60, what="the trainer's lease")
    wait_until(lambda: learned(store, name, 100), timeout=60, what="100 events learned")

    proc = env.start("rebuild", "rebuild", name)
    assert proc.wait(timeout=60) == EXIT_TRAINER_RUNNING == 75
    out = env.log("rebuild")
    assert f"pid {trainer.pid} on " in out and "stop it before rebuilding" in out, out
    assert all(m.rebuilt_from is None for m in store.list_versions(name))
    assert store.owner(name) == lease  # the trainer's lease untouched
    assert trainer.poll() is None
