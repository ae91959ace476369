"""The leaderboard's served column and the challengers' chart lines, on the real Kafka, Redis,
trainer, API and headless Chromium: replicas serve only the champion; when a label joins a served
prediction, each challenger is scored on the logged features of that request."""

from __future__ import annotations

import signal
import subprocess

import httpx
import orjson
from kafka import KafkaProducer
from river import compose, datasets, linear_model, metrics, preprocessing, tree
from selenium.webdriver.common.by import By

from model_store.store import CheckpointStore
from stream.local_services import free_port
from stream.paired_test import PairedTest
from stream.publish import publish
from tests.helpers.browser import chromium, screenshot
from tests.helpers.learning import learned
from tests.helpers.processes import Env, cli, stop, wait_until, write_spec

ROWS = list(datasets.Phishing().take(400))
WARMUP = 150
CHALLENGERS = {
    "tree": [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}],
    "l2": ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {"l2": 0.01}}],
}
# raises KeyError on every event (no 'absent' feature): disabled at once, the champion learns on
BROKEN = [{"feature_extraction.BagOfWords": {"on": "absent"}}, "naive_bayes.MultinomialNB"]
OFTEN = {"every_events": 50, "every_seconds": 0.5, "keep": 50}
NEVER = {"every_events": 100_000, "every_seconds": 3600, "keep": 50}  # only the final one, on SIGTERM


def spec(env: Env, name: str, checkpoint: dict, challengers: dict) -> None:
    write_spec(
        env.models_dir,
        name=name,
        topic=name,
        challengers=challengers,
        checkpoint=checkpoint,
        delayed_labels={"max_age_seconds": 600, "max_pending": 10_000},
    )


def references(joins: list[tuple[dict, bool, bool]]) -> dict[str, dict]:
    """Each challenger's pipeline as a plain River loop: the warm-up events test-then-train, then
    every joined request in join order, predicted on its features before learning its label;
    scored beside the prediction that was served, with the same paired test."""
    models = {
        "tree": tree.HoeffdingTreeClassifier(grace_period=50),
        "l2": compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(l2=0.01)),
    }
    out = {}
    for name, model in models.items():
        for x, y in ROWS[:WARMUP]:
            model.predict_one(x)
            model.learn_one(x, y)
        mine, served, test, n = metrics.Accuracy(), metrics.Accuracy(), PairedTest("classification"), 0
        for x, y, prediction in joins:
            y_pred = model.predict_one(x)
            model.learn_one(x, y)
            if y_pred is None:
                continue
            mine.update(y, y_pred)
            served.update(y, prediction)
            test.update(y, prediction, y_pred)
            n += 1
        out[name] = {"value": mine.get(), "champion": served.get(), "n": n, "paired": test.result()}
    return out


def pending(metrics_port: int, name: str, n: int) -> bool:
    """The trainer holds exactly ``n`` logged predictions waiting for their labels."""
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    except httpx.ConnectError:
        return False  # a trainer that is still starting
    return f'streamlearn_label_joins_pending{{model="{name}"}} {float(n)}' in text


def start_trainer(env: Env, name: str) -> tuple[subprocess.Popen, int]:
    metrics_port = free_port()
    return env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(metrics_port)), metrics_port


def test_the_served_column_scores_each_challenger_on_the_served_requests_exactly_once_across_a_sigkill(
    env: Env, store: CheckpointStore, port: int
):
    name = env.key_prefix
    spec(env, name, OFTEN, CHALLENGERS)
    trainer, metrics_port = start_trainer(env, name)
    publish([{"features": x, "label": y} for x, y in ROWS[:WARMUP]], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, WARMUP), timeout=60, what="warm-up learned")
    env.start_api(port)
    base = f"http://127.0.0.1:{port}/models/{name}"
    wait_until(lambda: httpx.get(base, timeout=5).json().get("version"), timeout=30, what="served")

    served = []  # (id, features, label, prediction) in the order the API answered
    with httpx.Client(timeout=5) as client:
        for i, (x, y) in enumerate(ROWS[WARMUP : WARMUP + 100]):
            answer = client.post(f"{base}/predict", json={"features": x, "id": f"q{i}"}).json()
            served.append((answer["id"], x, y, answer["prediction"]))
    wait_until(lambda: pending(metrics_port, name, 100), timeout=60, what="100 predictions pending")

    # from here on the trainer writes a version only when it stops: a SIGKILL loses what it
    # learned since, and the restarted trainer must join those labels again, once
    assert stop(trainer) == 0
    spec(env, name, NEVER, CHALLENGERS)
    trainer, metrics_port = start_trainer(env, name)
    wait_until(lambda: pending(metrics_port, name, 100), timeout=60, what="the predictions read again")
    producer = KafkaProducer(bootstrap_servers=env.kafka)

    def label(part: list) -> None:
        for id_, _, y, _ in part:
            producer.send(name, orjson.dumps({"id": id_, "label": y}))
        producer.flush()

    label(served[:30])
    wait_until(lambda: pending(metrics_port, name, 70), timeout=60, what="30 labels joined")
    assert stop(trainer) == 0  # its final version holds 30 joins
    first = wait_until(lambda: learned(store, name, WARMUP + 30), timeout=30, what="30 joins checkpointed")
    assert first[0].challengers["l2"]["served"]["n"] == 30

    trainer, metrics_port = start_trainer(env, name)
    wait_until(lambda: pending(metrics_port, name, 70), timeout=60, what="resumed with 70 pending")
    label(served[30:])
    wait_until(lambda: pending(metrics_port, name, 0), timeout=60, what="every label joined")
    stop(trainer, signal.SIGKILL)  # 70 joins learned and scored, none of them checkpointed

    spec(env, name, OFTEN, CHALLENGERS)
    env.start_trainer(name)
    meta, _ = wait_until(
        lambda: learned(store, name, WARMUP + 100), timeout=60, what="the 70 labels joined again"
    )
    assert meta.served["n"] == 100 and meta.served["joins"]["hit"] == 100  # not 170

    expected = references([(x, y, prediction) for _, x, y, prediction in served])
    by_hand = metrics.Accuracy()
    for _, _, y, prediction in served:
        by_hand.update(y, prediction)
    board = httpx.get(f"{base}/leaderboard", timeout=10).json()
    assert board["version"] == meta.version
    rows = {r["name"]: r for r in board["rows"]}
    champion = rows["champion"]["served"]
    assert champion == {
        "metric": "Accuracy",
        "value": meta.served["overall"],
        "n": 100,
        "champion": None,
        "difference": None,
        "paired": None,
        "better": None,
    }
    assert champion["value"] == by_hand.get()  # ServedScores: what the API actually answered
    for cname, want in expected.items():
        got = rows[cname]["served"]
        assert got["n"] == want["n"] and got["n"] in (99, 100), cname  # a tree predicts nothing at first
        assert got["value"] == want["value"] and got["champion"] == want["champion"], cname
        assert got["paired"] == want["paired"], cname
        assert got["difference"] == want["value"] - want["champion"], cname

    board = cli(env, "leaderboard", name)
    assert board.returncode == 0, board.stderr
    assert "served" in board.stdout and "joined" in board.stdout, board.stdout
    l2_line = next(line for line in board.stdout.splitlines() if " l2 " in line)
    assert f"{expected['l2']['value']:.4f}" in l2_line and f" {expected['l2']['n']} " in l2_line, l2_line


def test_the_dashboard_draws_a_line_per_challenger_and_shows_the_served_column(
    env: Env, store: CheckpointStore, port: int
):
    name = env.key_prefix
    spec(env, name, OFTEN, {**CHALLENGERS, "broken": BROKEN})
    env.start_trainer(name)
    publish([{"features": x, "label": y} for x, y in ROWS[:WARMUP]], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, WARMUP), timeout=60, what="warm-up learned")
    env.start_api(port)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{base}/models/{name}", timeout=5).json().get("version"), what="served")
    producer = KafkaProducer(bootstrap_servers=env.kafka)
    with httpx.Client(timeout=5) as client:
        for i, (x, y) in enumerate(ROWS[WARMUP : WARMUP + 20]):
            answer = client.post(f"{base}/models/{name}/predict", json={"features": x, "id": f"d{i}"})
            producer.send(name, orjson.dumps({"id": answer.json()["id"], "label": y}))
    producer.flush()
    meta, _ = wait_until(lambda: learned(store, name, WARMUP + 20), timeout=60, what="20 labels learned")
    l2 = meta.challengers["l2"]["served"]
    assert l2["n"] == 20 and meta.challengers["broken"]["error"].startswith("KeyError")

    with chromium() as browser:
        browser.get(f"{base}/dashboard")
        lines = wait_until(
            lambda: (
                len(
                    s := browser.execute_script(
                        "return ((window.streamlearn.models[arguments[0]] || {}).metricSeries) || []", name
                    )
                )
                >= 6
                and s
            ),
            timeout=30,
            what="the challengers' lines on the metric chart",
        )
        assert lines == [
            "rolling Accuracy (champion)",
            "cumulative Accuracy",
            "served Accuracy",
            "challenger broken (disabled)",
            "challenger l2",
            "challenger tree",
        ]
        section = f'section[data-model="{name}"]'
        legend = [
            e.text
            for e in browser.find_elements(
                By.CSS_SELECTOR, f"{section} .chart:first-child .u-legend .u-label"
            )
        ]
        assert [t for t in legend if t.startswith("challenger")] == lines[3:]  # what the reader sees
        drawn = browser.execute_script(
            "const s = window.streamlearn.models[arguments[0]]; return s && s.metricSeries.length", name
        )
        assert drawn == len(lines)

        served_js = (
            f"return [...document.querySelectorAll('{section} tr[data-row]')].map(r => "
            "[r.dataset.row, (r.querySelector('[data-served]') || {}).dataset?.served || null, "
            "(r.querySelector('[data-joined]') || {}).dataset?.joined || null])"
        )
        want = {"champion": [f"{meta.served['overall']:.4f}", "20"], "l2": [f"{l2['value']:.4f}", "20"]}
        cells = wait_until(
            lambda: (
                (t := {row[0]: row[1:] for row in browser.execute_script(served_js)})
                and all(t.get(k) == v for k, v in want.items())
                and t
            ),
            timeout=30,
            what="the served column in the leaderboard table",
        )
        assert cells["broken"][1] == "0" and set(cells) == {"champion", "tree", "l2", "broken"}
        headers = browser.find_elements(By.CSS_SELECTOR, f"{section} table.leaderboard th")
        assert "served" in [h.text for h in headers]
        screenshot(browser, "dashboard-challenger-lines")
