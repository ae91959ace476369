"""Predict now, learn when the label arrives: on the real Kafka, Redis, trainer and API."""

from __future__ import annotations

import random
import signal
import time

import httpx
import orjson
from kafka import KafkaProducer
from river import datasets, metrics
from selenium.webdriver.common.by import By

from model_store.store import CheckpointStore
from stream.local_services import KafkaServer, free_port
from stream.publish import publish
from tests.helpers.browser import chromium, screenshot
from tests.helpers.kafka import dead_letters
from tests.helpers.learning import learned
from tests.helpers.processes import Env, cli, stop, wait_until, write_spec

ROWS = list(datasets.Phishing().take(400))


def serving(base: str, name: str) -> int | None:
    return httpx.get(f"{base}/models/{name}").json().get("version")


def start(
    env: Env, port: int, max_age: float, warmup: int = 150, metrics_port: int = 0
) -> tuple[str, str, CheckpointStore]:
    name = env.key_prefix
    write_spec(
        env.models_dir,
        name=name,
        topic=name,
        delayed_labels={"max_age_seconds": max_age, "max_pending": 10_000},
    )
    store = CheckpointStore.from_url(env.redis_url, env.key_prefix)
    env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(metrics_port))
    env.start_api(port)
    publish([{"features": x, "label": y} for x, y in ROWS[:warmup]], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, warmup), timeout=60, what="warm-up learned")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: serving(base, name), timeout=30, what="a served version")
    return name, base, store


def test_labels_arriving_later_and_out_of_order_are_learned_once_and_served_accuracy_is_exact(
    env: Env, port: int
):
    metrics_port = free_port()
    name, base, store = start(env, port, max_age=600, metrics_port=metrics_port)
    producer = KafkaProducer(bootstrap_servers=env.kafka)
    # one label arrives before its prediction is even made: it waits for it
    early_id = "early-bird"
    early_x, early_y = ROWS[150]
    producer.send(name, orjson.dumps({"id": early_id, "label": early_y}))
    producer.flush()
    served = {}
    with httpx.Client() as client:
        for i, (x, y) in enumerate(ROWS[150:250]):
            body = {"features": x} if i % 2 else {"features": x, "id": early_id if i == 0 else f"req-{i}"}
            r = client.post(f"{base}/models/{name}/predict", json=body).json()
            assert r["id"] == body.get("id", r["id"]) and r["id"]
            served[r["id"]] = (r["prediction"], r["version"], y)
    time.sleep(1.0)  # labels come later...
    ids = [i for i in served if i != early_id]
    random.Random(3).shuffle(ids)  # ...and out of order
    for id_ in ids:
        producer.send(name, orjson.dumps({"id": id_, "label": served[id_][2]}))
    producer.flush()

    meta, _ = wait_until(lambda: learned(store, name, 250), timeout=60, what="every label joined and learned")
    summary = meta.served
    assert summary["joins"]["hit"] == 100
    assert summary["joins"]["unknown"] == summary["joins"]["late"] == summary["joins"]["duplicate"] == 0
    by_hand = {}
    for prediction, version, label in served.values():
        by_hand.setdefault(version, metrics.Accuracy()).update(label, prediction)
    assert {int(v): s["value"] for v, s in summary["by_version"].items()} == {
        v: m.get() for v, m in by_hand.items()
    }
    assert sum(s["n"] for s in summary["by_version"].values()) == 100
    overall = metrics.Accuracy()
    for prediction, _, label in served.values():
        overall.update(label, prediction)
    assert summary["overall"] == overall.get()
    assert summary["label_delay_seconds"]["p50"] > 0

    # the same figures in /monitors, in the trainer's Prometheus metrics and on the dashboard
    report = wait_until(
        lambda: (
            (r := httpx.get(f"{base}/models/{name}/monitors").json())["served"]
            and r["served"]["n"] == 100
            and r
        ),
        what="served scores in /monitors",
    )
    assert report["served"]["overall"] == overall.get()
    assert report["served"]["joins"]["hit"] == 100
    prometheus = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert f'streamlearn_served_metric{{metric="Accuracy",model="{name}",version="all"}} {overall.get()}' in (
        prometheus
    ), prometheus
    assert f'streamlearn_label_joins_total{{model="{name}",outcome="hit"}} 100.0' in prometheus
    assert f'streamlearn_label_joins_pending{{model="{name}"}} 0.0' in prometheus  # every one joined
    with chromium() as browser:
        browser.get(f"{base}/dashboard")
        shown = wait_until(
            lambda: browser.execute_script(
                "return (window.streamlearn.models[arguments[0]] || {}).served", name
            ),
            timeout=30,
            what="served accuracy on the dashboard",
        )
        assert shown == overall.get()
        facts = browser.find_element(By.CSS_SELECTOR, f'section[data-model="{name}"] .facts').text
        assert "served Accuracy" in facts and "100 labelled" in facts
        screenshot(browser, "dashboard-served-accuracy")


def test_unknown_and_expired_labels_are_dead_lettered_with_reasons(env: Env, port: int):
    name, base, store = start(env, port, max_age=1.5, warmup=20)
    producer = KafkaProducer(bootstrap_servers=env.kafka)
    r = httpx.post(f"{base}/models/{name}/predict", json={"features": ROWS[20][0], "id": "too-slow"})
    assert r.status_code == 200
    producer.send(name, orjson.dumps({"id": "nobody-asked", "label": True}))
    producer.flush()
    time.sleep(2.5)  # past max_age for both, in event time once newer records arrive
    publish([{"features": x, "label": y} for x, y in ROWS[21:30]], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 29), timeout=60, what="the later events learned")
    producer.send(name, orjson.dumps({"id": "too-slow", "label": True}))
    producer.flush()
    dead = dead_letters(env.kafka, name, 2)
    reasons = {rec.key.decode(): dict(rec.headers)["error"].decode() for rec in dead}
    assert reasons["nobody-asked"].startswith("unknown id")
    assert reasons["too-slow"].startswith("expired")
    meta, _ = wait_until(
        lambda: (m := store.fetch_latest(name)) and m[0].served.get("joins", {}).get("late") and m,
        timeout=30,
        what="counts checkpointed",
    )
    assert meta.served["joins"]["unknown"] == 1 and meta.served["joins"]["expired"] >= 1
    assert meta.n_learned == 29  # the trainer went on


def test_sigkill_while_predictions_wait_for_labels_loses_and_repeats_nothing(env: Env, port: int):
    metrics_port = free_port()
    name, base, store = start(env, port, max_age=600, warmup=100, metrics_port=metrics_port)
    served = {}
    for i, (x, y) in enumerate(ROWS[100:180]):
        r = httpx.post(f"{base}/models/{name}/predict", json={"features": x, "id": f"k{i}"}).json()
        served[r["id"]] = y
    # the trainer has read the logged predictions (pending joins), then dies hard
    wait_until(
        lambda: httpx.get(f"{base}/readyz").json()["prediction_log"]["sent"] >= 80,
        timeout=60,
        what="predictions logged",
    )
    pending = f'streamlearn_label_joins_pending{{model="{name}"}} 80.0'
    wait_until(
        lambda: pending in httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text,
        timeout=60,
        what="the trainer holding all 80 predictions as pending joins",
    )
    stop(env.children[0], signal.SIGKILL)
    producer = KafkaProducer(bootstrap_servers=env.kafka)
    for id_, label in served.items():
        producer.send(name, orjson.dumps({"id": id_, "label": label}))
    producer.flush()
    env.start_trainer(name)
    meta, _ = wait_until(
        lambda: learned(store, name, 180), timeout=60, what="all labels learned after restart"
    )
    assert meta.served["joins"]["hit"] == 80
    assert stop(env.children[-1]) == 0  # the final checkpoint holds all it ever learned
    final = store.fetch_latest(name)[0]
    assert final.n_learned == 180 and final.served["joins"]["hit"] == 80  # and nothing twice


def test_predictions_keep_being_answered_while_kafka_is_down_and_drops_are_counted(
    redis_server, prefix: str, tmp_path
):
    own_kafka = KafkaServer(tmp_path / "own-kafka").start()
    env = Env(own_kafka.bootstrap, redis_server.url, tmp_path / "models", prefix, tmp_path / "logs")
    port = free_port()
    try:
        name, base, _ = start(env, port, max_age=600, warmup=20)
        stop(env.children[0])  # the trainer is not part of this story
        wait_until(
            lambda: (
                httpx.post(f"{base}/models/{name}/predict", json={"features": ROWS[0][0]})
                and httpx.get(f"{base}/readyz").json()["prediction_log"]["sent"] >= 1
            ),
            timeout=30,
            what="the log reaching Kafka",
        )
        own_kafka.stop()
        for x, _ in ROWS[:300]:
            r = httpx.post(f"{base}/models/{name}/predict", json={"features": x}, timeout=5)
            assert r.status_code == 200
        wait_until(
            lambda: httpx.get(f"{base}/readyz").json()["prediction_log"]["dropped"] > 0,
            timeout=60,
            what="drops counted",
        )
        own_kafka.start()
        sent_before = httpx.get(f"{base}/readyz").json()["prediction_log"]["sent"]

        def resumed() -> bool:
            httpx.post(f"{base}/models/{name}/predict", json={"features": ROWS[1][0]})
            return httpx.get(f"{base}/readyz").json()["prediction_log"]["sent"] > sent_before

        wait_until(resumed, timeout=90, interval=0.5, what="logging resumed")
    finally:
        env.stop_all()
        own_kafka.stop()


def test_publish_replays_a_dataset_with_predictions_now_and_labels_later(env: Env, port: int):
    name, base, store = start(env, port, max_age=600, warmup=50)
    result = cli(
        env,
        "publish",
        "--model",
        name,
        "--dataset",
        "Phishing",
        "--limit",
        "60",
        "--delayed-labels",
        "--api",
        base,
        "--label-delay",
        "0.5",
        "--rate",
        "200",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "60 predictions" in result.stdout and "60 labels" in result.stdout
    meta, _ = wait_until(lambda: learned(store, name, 110), timeout=60, what="the replayed labels learned")
    assert meta.served["joins"]["hit"] == 60
