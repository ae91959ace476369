"""Monitors, metrics and the dashboard on the real Kafka, Redis, Prometheus and Chromium."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from river import compose, linear_model, preprocessing
from river.datasets import synth

from model_store.feature_stats import summarize
from model_store.snapshot import SnapshotMeta, dump_state
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore
from stream.learner import TIMED_EVERY
from stream.local_services import free_port
from stream.publish import publish
from tests.helpers.browser import chromium, screenshot
from tests.helpers.factories import model_spec
from tests.helpers.processes import Env, stop, wait_until, write_spec
from tests.helpers.prometheus import prometheus, query, sample
from tests.helpers.replicas import api_client

DRIFT_AT, LENGTH, BOUND = 3000, 6000, 500


def sine_events(drift: bool, seed: int = 1) -> list[dict]:
    """River's Sine concept; with ``drift`` reversed abruptly at event 3000."""
    stream = synth.Sine(classification_function=0, seed=seed)
    if drift:
        stream = synth.ConceptDriftStream(
            stream=stream,
            drift_stream=synth.Sine(classification_function=1, seed=seed + 1000),
            position=DRIFT_AT,
            width=50,
            seed=seed,
        )
    return [{"features": x, "label": y} for x, y in stream.take(LENGTH)]


def learned(store: CheckpointStore, name: str, n: int) -> bool:
    newest = store.fetch_latest(name)
    return newest is not None and newest[0].n_learned == n


def monitors(port: int, name: str, history: int = 300) -> dict:
    r = httpx.get(f"http://127.0.0.1:{port}/models/{name}/monitors", params={"history": history}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


CARD_JS = """
const s = document.querySelector(`section.model[data-model='${arguments[0]}']`);
if (!s) return null;
const drawn = [...s.querySelectorAll('.uplot')].map((u) => +(u.dataset.markers || 0));
return {
  points: +s.dataset.points,
  detections: +s.dataset.detections,
  markers: drawn.length ? Math.min(...drawn) : 0,  // drift lines on the chart showing fewest
  loadedAt: window.streamlearn.loadedAt,
  messages: window.streamlearn.messages,
  navigations: performance.getEntriesByType('navigation').length,
};
"""


def model_card(browser, name: str) -> dict | None:
    """What the dashboard shows for one model, read from the page."""
    return browser.execute_script(CARD_JS, name)


# -- data drift, in-process against a real redis-server ---------------------------------


def spec(name: str) -> ModelSpec:
    return model_spec(name, data_drift={"window": 300, "min_samples": 100})


def training(n: int, seed: int) -> list[tuple[dict, bool]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(5, 2), "c": rng.choice(["x", "y"])}
        rows.append((x, x["a"] + 0.1 * x["b"] > 0.5))
    return rows


@pytest.fixture
def client(store: CheckpointStore, prefix: str) -> Iterator[TestClient]:
    with api_client(store, prefix, {"clf": spec("clf")}) as c:
        yield c


def test_a_shifted_feature_is_flagged_and_an_unshifted_one_is_not(client: TestClient, store: CheckpointStore):
    rows = training(2000, seed=1)
    model = compose.Pipeline(
        compose.Select("a", "b"), preprocessing.StandardScaler(), linear_model.LogisticRegression()
    )
    for x, y in rows:
        model.learn_one(x, y)
    stats = summarize([x for x, _ in rows])  # what the trainer stores with a checkpoint
    meta = SnapshotMeta(model="clf", task="classification", topic="clf", n_learned=2000, feature_stats=stats)
    meta = store.publish(meta, dump_state({"model": model}), keep=5)
    wait_until(lambda: client.get("/models/clf").json().get("version") == meta.version, timeout=10)

    live = [x for x, _ in training(300, seed=2)]
    for x in live:
        x["a"] += 2.0  # two standard deviations: the traffic no longer looks like training
    for x in live[:50]:
        assert client.post("/models/clf/predict", json={"features": x}).status_code == 200
    early = client.get("/models/clf/monitors").json()["data_drift"]
    assert early["samples"] == 50 and early["state"] == "ok"
    assert all(f["score"] is None and not f["flagged"] for f in early["features"])  # too few to judge

    r = client.post("/models/clf/predict/batch", json={"instances": [{"features": x} for x in live[50:]]})
    assert r.status_code == 200
    report = wait_until(  # scores are recomputed at most once a second
        lambda: (body := client.get("/models/clf/monitors").json())["data_drift"]["samples"] == 300 and body,
        timeout=10,
        what="the scores over all 300 requests",
    )
    drift = {f["feature"]: f for f in report["data_drift"]["features"]}
    assert report["data_drift"]["reference_version"] == meta.version
    assert drift["a"]["flagged"] and drift["a"]["score"] >= 0.25
    assert not drift["b"]["flagged"] and drift["b"]["score"] < 0.1
    assert not drift["c"]["flagged"]
    assert report["state"] == "alert"
    assert any("feature 'a'" in alert for alert in report["alerts"])
    assert not any("feature 'b'" in alert for alert in report["alerts"])

    text = client.get("/metrics").text
    assert sample(text, "streamlearn_feature_drift_score", model="clf", feature="a") >= 0.25
    assert sample(text, "streamlearn_feature_drift_score", model="clf", feature="b") < 0.1
    assert sample(text, "streamlearn_predictions_total", model="clf", version=str(meta.version)) == 300
    assert sample(text, "streamlearn_predict_seconds_count", model="clf") == 51  # 50 single + 1 batch
    assert sample(text, "streamlearn_served_version", model="clf") == meta.version
    assert sample(text, "streamlearn_snapshots_refused_total", model="clf") == 0


def test_monitors_of_an_unknown_model_are_404(client: TestClient):
    r = client.get("/models/nope/monitors")
    assert r.status_code == 404 and "configured models: ['clf']" in r.json()["detail"]
    assert client.get("/models/nope/monitors/stream").status_code == 404


# -- concept drift end to end ------------------------------------------------------------


def test_concept_drift_is_detected_end_to_end_and_a_stationary_stream_raises_no_alert(
    env: Env, store: CheckpointStore, port: int
):
    drifting, calm = f"{env.key_prefix}-drift", f"{env.key_prefix}-calm"
    metrics_ports = {}
    for name in (drifting, calm):
        write_spec(
            env.models_dir,
            name=name,
            topic=name,
            rolling_window=200,
            error_rate={"windows": [500, 2000]},
            checkpoint={"every_events": 1000, "every_seconds": 1.0, "keep": 20},
        )
        metrics_ports[name] = free_port()
        env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(metrics_ports[name]))
    env.start_api(port)
    publishers = [
        threading.Thread(
            target=publish,
            args=(sine_events(name == drifting), name, env.kafka, 500.0),  # about 12 s: a dozen points
            kwargs={"progress": False},
        )
        for name in (drifting, calm)
    ]
    for t in publishers:
        t.start()
    for t in publishers:
        t.join()
    for name in (drifting, calm):
        wait_until(lambda: learned(store, name, LENGTH), timeout=120, what=f"{name}: all events learned")  # noqa: B023
        wait_until(
            lambda: monitors(port, name, 1)["n_learned"] == LENGTH,  # noqa: B023
            timeout=30,
            what=f"{name}: the last metric point",
        )

    report = monitors(port, drifting)
    detections = report["concept_drift"]["detections"]
    assert detections, report["concept_drift"]
    first = detections[0]
    assert DRIFT_AT - 50 <= first["n"] <= DRIFT_AT + BOUND, detections
    assert first["version"] is not None  # the newest version when the drift was detected
    assert report["concept_drift"]["detector"] == "drift.ADWIN"
    assert (
        max(p["error_rate"]["windows"]["500"] or 0 for p in report["history"]) >= 0.3
        or any(p["error_rate"]["state"] == "alert" for p in report["history"])
        or report["error_rate"]["cumulative"] > 0.05
    )  # the reversal shows in the error rate
    meta, _ = store.fetch_latest(drifting)
    assert meta.monitors["concept_drift"]["detections_total"] == report["concept_drift"]["detections_total"]
    assert meta.feature_stats and set(meta.feature_stats) == {"0", "1"}

    steady = monitors(port, calm)
    assert steady["concept_drift"]["detections_total"] == 0 and steady["concept_drift"]["detections"] == []
    assert steady["state"] == "ok" and steady["alerts"] == []
    assert steady["error_rate"]["state"] == "ok"

    texts = {n: httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=10).text for n, p in metrics_ports.items()}
    detected = sample(
        texts[drifting], "streamlearn_drift_detections_total", model=drifting, detector="drift.ADWIN"
    )
    assert detected is not None and detected >= 1
    assert sample(texts[calm], "streamlearn_drift_detections_total", model=calm, detector="drift.ADWIN") == 0
    assert sample(texts[drifting], "streamlearn_events_learned_total", model=drifting) == LENGTH
    # one event in TIMED_EVERY is timed: those learned when n_learned was 0, 16, 32, ...
    timed = (LENGTH + TIMED_EVERY - 1) // TIMED_EVERY
    assert sample(texts[drifting], "streamlearn_learn_seconds_count", model=drifting) == timed

    with chromium() as browser:
        browser.get(f"http://127.0.0.1:{port}/dashboard")
        card = wait_until(
            lambda: (c := model_card(browser, drifting)) and c["markers"] >= 1 and c,
            timeout=60,
            what="the drift marker on every chart of the dashboard",
        )
        calm_card = wait_until(
            lambda: (c := model_card(browser, calm)) and c["points"] > 0 and c, timeout=30, what="calm points"
        )
        assert card["points"] > 0 and card["detections"] == len(detections)
        assert calm_card["detections"] == 0 and calm_card["markers"] == 0
        badge = browser.execute_script(
            "return document.querySelector(`section[data-model='${arguments[0]}'] "
            "[data-monitor=concept_drift]`).textContent",
            calm,
        )
        assert badge == "concept drift: ok"
        screenshot(browser, "dashboard-concept-drift")


# -- live dashboard, SSE and Prometheus ---------------------------------------------------


def test_dashboard_updates_live_and_prometheus_scrapes_api_and_trainer(
    env: Env, store: CheckpointStore, port: int, tmp_path
):
    name = env.key_prefix
    write_spec(
        env.models_dir,
        name=name,
        topic=name,
        checkpoint={"every_events": 200, "every_seconds": 1.0, "keep": 20},
    )
    trainer_port = free_port()
    trainer = env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(trainer_port))
    env.start_api(port)
    events = sine_events(False)[:3000]
    stop_publishing = threading.Event()
    publisher = threading.Thread(
        target=publish,
        args=(events, name, env.kafka, 60.0),  # a live stream of about 50 s
        kwargs={"progress": False, "stop": stop_publishing},
    )
    publisher.start()
    try:
        wait_until(lambda: store.latest_version(name), timeout=60, what="a first version")

        # SSE: a new metric point arrives on the model's stream
        with httpx.stream("GET", f"http://127.0.0.1:{port}/models/{name}/monitors/stream", timeout=30) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            data = next(line for line in r.iter_lines() if line.startswith("data: "))
        message = orjson.loads(data[len("data: ") :])
        assert message["model"] == name and message["point"]["n_learned"] > 0

        ready = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: httpx.get(ready, timeout=5).status_code == 200, timeout=30, what="API serving")
        predict = f"http://127.0.0.1:{port}/models/{name}/predict"
        for e in events[:20]:
            assert httpx.post(predict, json={"features": e["features"]}, timeout=10).status_code == 200

        jobs = {"streamlearn-api": f"127.0.0.1:{port}", "streamlearn-trainer": f"127.0.0.1:{trainer_port}"}
        with prometheus(tmp_path / "prometheus", jobs) as prom, chromium() as browser:
            browser.get(f"http://127.0.0.1:{port}/dashboard")
            before = wait_until(
                lambda: (c := model_card(browser, name)) and c["points"] >= 2 and c,
                timeout=60,
                what="points on the dashboard",
            )
            # Points also arrive by the history the page fetches again when its event stream
            # (re)opens, which may land after ``before``: wait for one that came as an event.
            after = wait_until(
                lambda: (
                    (c := model_card(browser, name))
                    and c["points"] > before["points"]
                    and c["messages"] > 0
                    and c
                ),
                timeout=60,
                what="new points arriving by server-sent events, without a reload",
            )
            assert after["loadedAt"] == before["loadedAt"] and after["navigations"] == 1  # no reload
            screenshot(browser, "dashboard-live")

            accuracy = wait_until(
                lambda: query(prom, f'streamlearn_prequential_metric{{model="{name}",metric="Accuracy"}}'),
                timeout=60,
                what="the accuracy series in Prometheus",
            )
            assert {s["metric"]["window"] for s in accuracy} == {"cumulative", "rolling"}
            assert all(0.0 <= float(s["value"][1]) <= 1.0 for s in accuracy)
            predictions = wait_until(
                lambda: query(prom, f'streamlearn_predictions_total{{model="{name}"}}'),
                timeout=60,
                what="the API's prediction counter in Prometheus",
            )
            assert sum(float(s["value"][1]) for s in predictions) == 20
            up = query(prom, "up")
            assert {s["metric"]["job"]: s["value"][1] for s in up} == {
                "streamlearn-api": "1",
                "streamlearn-trainer": "1",
            }

            # Who trains the model, and a model nobody trains flagged.
            badge = f"return document.querySelector('[data-model=\"{name}\"] [data-trainer]').dataset.trainer"
            owner = f"{socket.gethostname()}:{trainer.pid}"
            wait_until(lambda: browser.execute_script(badge) == owner, timeout=30, what="the trainer shown")
            stop(trainer)
            wait_until(lambda: browser.execute_script(badge) == "none", timeout=30, what="nobody trains it")
            screenshot(browser, "dashboard-untrained")
    finally:
        stop_publishing.set()
        publisher.join()
