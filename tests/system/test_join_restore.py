"""Checkpoints hold the pending joins by their place in the prediction log, not their
features; a trainer killed with 10,000 predictions pending reads them back from Kafka
and joins every label exactly once (real Kafka, Redis, trainer and API)."""

from __future__ import annotations

import pickle
import signal
from collections import Counter

import httpx
import orjson
import yaml
from kafka import KafkaProducer
from river import datasets

from model_store.snapshot import load_model
from model_store.store import CheckpointStore
from stream.local_services import free_port
from stream.publish import publish
from tests.helpers.learning import learned, plain_river
from tests.helpers.processes import ROOT, SIGNING_KEY, Env, stop, wait_until, write_spec

PENDING = 10_000
ROWS = list(datasets.Phishing())
Served = dict[str, tuple[dict, bool, int]]  # id -> (features, label, version served)


def pending_gauge(metrics_port: int, name: str) -> float | None:
    for line in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text.splitlines():
        if line.startswith(f'streamlearn_label_joins_pending{{model="{name}"}}'):
            return float(line.split()[-1])
    return None


def deploy(env: Env, port: int, **spec: object) -> tuple[str, str, CheckpointStore, int, list[dict]]:
    """Trainer (with a metrics port) and API for a model that learned 100 events and is served."""
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name, **spec)
    store = CheckpointStore.from_url(env.redis_url, env.key_prefix)
    metrics_port = free_port()
    env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(metrics_port))
    env.start_api(port)
    warmup = [{"features": x, "label": y} for x, y in ROWS[:100]]
    publish(warmup, name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 100), timeout=60, what="warm-up learned")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/models/{name}").json().get("version"), timeout=30, what="served")
    return name, base, store, metrics_port, warmup


def serve(base: str, name: str, n: int) -> Served:
    """``n`` predictions with ids p0.., in batches of 1000 (each one logged on its own)."""
    served: Served = {}
    with httpx.Client(timeout=60) as client:
        for start in range(0, n, 1000):
            rows = [(f"p{i}", *ROWS[i % len(ROWS)]) for i in range(start, min(n, start + 1000))]
            body = {"instances": [{"id": id_, "features": x} for id_, x, _ in rows]}
            answer = client.post(f"{base}/models/{name}/predict/batch", json=body).json()
            for (id_, x, y), p in zip(rows, answer["predictions"], strict=True):
                assert p["id"] == id_
                served[id_] = (x, y, answer["version"])
    return served


def checkpoint_after(env: Env, store: CheckpointStore, name: str, events: list[dict], n: int):
    """Events after the predictions, so that a version holds them all as pending joins."""
    publish(events, name, env.kafka, progress=False)
    meta, _ = wait_until(lambda: learned(store, name, n), timeout=120, what="a version with all pending")
    return meta


def test_sigkill_with_10000_pending_predictions_joins_each_label_once_from_a_small_checkpoint(
    env: Env, port: int
):
    name, base, store, metrics_port, warmup = deploy(
        env,
        port,
        delayed_labels={"max_age_seconds": 3600, "max_pending": PENDING},
        checkpoint={"every_events": 1000, "every_seconds": 0.5, "keep": 50},
    )
    served = serve(base, name, PENDING)
    wait_until(lambda: pending_gauge(metrics_port, name) == PENDING, timeout=120, what="all pending")
    more = [{"features": x, "label": y} for x, y in ROWS[100:120]]
    meta = checkpoint_after(env, store, name, more, 120)
    assert sum(meta.prediction_offsets.values()) == PENDING
    features_alone = sum(len(pickle.dumps(x)) for x, _, _ in served.values())
    assert meta.training_bytes < features_alone / 10, (meta.training_bytes, features_alone)

    stop(env.children[0], signal.SIGKILL)
    producer = KafkaProducer(bootstrap_servers=env.kafka, linger_ms=20)
    for id_, (_, label, _) in served.items():
        producer.send(name, orjson.dumps({"id": id_, "label": label}))
    producer.flush()
    env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(metrics_port))
    total = 120 + PENDING
    meta, _ = wait_until(lambda: learned(store, name, total), timeout=120, what="every label learned")
    assert stop(env.children[-1]) == 0
    final = store.fetch_latest(name)[0]
    assert final.n_learned == total  # nothing twice
    assert final.served["joins"]["hit"] == PENDING and final.served["joins"]["expired"] == 0
    by_version = Counter(version for _, _, version in served.values())
    assert {int(v): row["n"] for v, row in final.served["by_version"].items()} == dict(by_version)
    assert f"{PENDING} pending predictions read back" in env.log(f"train-{name}")

    # the model learned each joined label once, in the order the labels came
    joined = [{"features": x, "label": y} for x, y, _ in served.values()]
    reference = plain_river(warmup + more + joined)
    model = load_model(*store.fetch_latest(name), SIGNING_KEY.encode())
    for x, _ in ROWS[200:220]:
        assert model.predict_proba_one(x) == reference.predict_proba_one(x)


def test_with_100000_predictions_pending_the_shipped_pipeline_artefact_stays_small(env: Env, port: int):
    shipped = yaml.safe_load((ROOT / "configs" / "models" / "phishing.yaml").read_text())
    shipped.pop("name"), shipped.pop("topic")
    shipped["checkpoint"] = {**shipped["checkpoint"], "every_seconds": 0.5}
    shipped["delayed_labels"] = {"max_pending": 100_000}  # the default
    name, base, store, metrics_port, _ = deploy(env, port, **shipped)
    nothing_pending = store.fetch_latest(name)[0]
    serve(base, name, 100_000)
    wait_until(lambda: pending_gauge(metrics_port, name) == 100_000, timeout=240, what="100,000 pending")
    meta = checkpoint_after(env, store, name, [{"features": x, "label": y} for x, y in ROWS[100:120]], 120)
    assert sum(meta.prediction_offsets.values()) == 100_000
    assert meta.blob_bytes < 64 * 1024 and abs(meta.blob_bytes - nothing_pending.blob_bytes) < 256
    # the training part grew by the positions of 100,000 predictions, not by their features
    assert meta.training_bytes - nothing_pending.training_bytes < 100_000
