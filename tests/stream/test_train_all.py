"""``streamlearn train --all``: every configured model trained by one process (compose's trainer)."""

from __future__ import annotations

import signal

from river import datasets

from model_store.store import CheckpointStore
from stream.publish import publish
from tests.helpers.processes import Env, stop, wait_until, write_spec


def test_one_process_trains_every_configured_model(env: Env, store: CheckpointStore, tmp_path):
    names = [f"{env.key_prefix}-clf", f"{env.key_prefix}-reg"]
    write_spec(env.models_dir, name=names[0], topic=names[0])
    write_spec(
        env.models_dir,
        name=names[1],
        topic=names[1],
        task="regression",
        pipeline=["preprocessing.StandardScaler", "linear_model.LinearRegression"],
        metrics=["MAE"],
    )
    publish(
        ({"features": x, "label": y} for x, y in datasets.Phishing().take(300)),
        names[0],
        env.kafka,
        progress=False,
    )
    publish(
        ({"features": x, "label": y} for x, y in datasets.TrumpApproval().take(300)),
        names[1],
        env.kafka,
        progress=False,
    )
    heartbeat = tmp_path / "trainer.alive"
    proc = env.start("train-all", "train", "--all", "--heartbeat", str(heartbeat))

    for name in names:
        meta = wait_until(
            lambda name=name: (m := store.fetch_latest(name)) and m[0].n_learned == 300 and m[0],
            timeout=90,
            what=f"{name}: 300 events learned",
        )
        assert meta.offsets == {0: 300}
    assert wait_until(heartbeat.exists, timeout=30, what="heartbeat")
    assert proc.poll() is None

    assert stop(proc, signal.SIGTERM, timeout=60) == 0, env.log("train-all")
    assert not heartbeat.exists()


def test_a_bad_model_config_stops_start_up_naming_it(env: Env):
    write_spec(env.models_dir, name=f"{env.key_prefix}-ok", topic=f"{env.key_prefix}-ok")
    write_spec(
        env.models_dir,
        name=f"{env.key_prefix}-bad",
        topic=f"{env.key_prefix}-bad",
        pipeline=["linear_model.NoSuchModel"],
    )
    proc = env.start("train-all", "train", "--all")
    assert proc.wait(timeout=60) == 2
    assert "NoSuchModel" in env.log("train-all")
