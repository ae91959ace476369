"""Challengers on the real trainer: exactly once across a SIGKILL, and the leaderboard over HTTP
and the CLI (real Kafka and Redis)."""

from __future__ import annotations

import pickle
import signal

import httpx
from river import compose, datasets, linear_model, preprocessing, tree

from model_store.snapshot import load_state
from model_store.store import CheckpointStore
from stream.publish import publish
from tests.helpers.browser import chromium, screenshot
from tests.helpers.learning import learned, phishing_events, plain_river
from tests.helpers.processes import SIGNING_KEY, Env, cli, stop, wait_until, write_spec

PROBE = [x for x, _ in datasets.Phishing().take(20)]
CHALLENGERS = {
    "tree": [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}],
    "l2": ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {"l2": 0.01}}],
}


def references(events: list[dict]) -> dict:
    models = {
        "tree": tree.HoeffdingTreeClassifier(grace_period=50),
        "l2": compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(l2=0.01)),
    }
    for model in models.values():
        for e in events:
            model.predict_one(e["features"])
            model.learn_one(e["features"], e["label"])
    return models


def test_challengers_learn_exactly_once_across_a_sigkill_and_the_leaderboard_shows_them(
    env: Env, store: CheckpointStore, port: int
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name, challengers=CHALLENGERS)
    events = phishing_events(1200)
    trainer = env.start_trainer(name)
    publish(events[:500], name, env.kafka, progress=False)
    wait_until(lambda: learned(store, name, 500), timeout=60, what="500 learned")
    publish(events[500:], name, env.kafka, progress=False, rate=400)
    stop(trainer, signal.SIGKILL)
    env.start_trainer(name)
    meta, blob = wait_until(lambda: learned(store, name, 1200), timeout=90, what="all learned after the kill")

    _, _, training = store.fetch_parts(name, meta.version)
    state = load_state(meta, blob, SIGNING_KEY.encode(), training)
    champion = state["model"]
    assert [champion.predict_proba_one(x) for x in PROBE] == [
        plain_river(events).predict_proba_one(x) for x in PROBE
    ]
    for cname, reference in references(events).items():
        learner = state["challengers"]["members"][cname]["learner"]
        assert learner["n_learned"] == 1200, cname
        model = learner["model"]
        assert [model.predict_proba_one(x) for x in PROBE] == [reference.predict_proba_one(x) for x in PROBE]
    assert set(meta.challengers) == set(CHALLENGERS)
    assert pickle.loads(blob).keys() == {"model"}  # challengers are training state, never served

    env.start_api(port)
    board = httpx.get(f"http://127.0.0.1:{port}/models/{name}/leaderboard", timeout=10).json()
    assert board["version"] == meta.version and board["main_metric"] == "Accuracy"
    rows = {r["name"]: r for r in board["rows"]}
    assert rows["champion"]["role"] == "champion" and set(rows) == {"champion", *CHALLENGERS}
    assert rows["tree"]["n_learned"] == 1200 and rows["tree"]["paired"]["test"] == "mcnemar"
    assert httpx.get(f"http://127.0.0.1:{port}/models/nope/leaderboard", timeout=10).status_code == 404

    with chromium() as browser:  # the live dashboard shows the leaderboard as a table
        browser.get(f"http://127.0.0.1:{port}/dashboard")
        rows_js = (
            f"return [...document.querySelectorAll('[data-model=\"{name}\"] tr[data-row]')]"
            ".map(r => r.dataset.row)"
        )
        shown = wait_until(lambda: browser.execute_script(rows_js), timeout=30, what="the leaderboard table")
        assert shown[0] == "champion" and set(shown) == {"champion", *CHALLENGERS}
        screenshot(browser, "dashboard-leaderboard")

    board = cli(env, "leaderboard", name)
    assert board.returncode == 0, board.stderr
    assert all(n in board.stdout for n in ("champion", "tree", "l2")) and f"v{meta.version}" in board.stdout


def test_promoting_a_challenger_serves_it_records_it_and_a_reset_brings_the_old_champion_back(
    env: Env, store: CheckpointStore, port: int
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name, challengers={"tree": CHALLENGERS["tree"]})
    events = phishing_events(600)
    env.start_trainer(name)
    publish(events, name, env.kafka, progress=False)
    before, _ = wait_until(lambda: learned(store, name, 600), timeout=60, what="600 learned")
    env.start_api(port, STREAMLEARN_ADMIN_KEY="admin-key")
    base = f"http://127.0.0.1:{port}/models/{name}"
    body = {"challenger": "tree", "reason": "better on the leaderboard"}
    assert httpx.post(f"{base}/promote", json=body, timeout=10).status_code == 401
    missing = httpx.post(f"{base}/promote", json={"challenger": "nope"}, headers=ADMIN, timeout=10)
    assert missing.status_code == 404 and "tree" in missing.text
    assert httpx.post(f"{base}/promote", json=body, headers=ADMIN, timeout=10).status_code == 202

    promoted = wait_until(
        lambda: (m := store.fetch_latest(name)[0]).promotion and m, timeout=30, what="the promotion's version"
    )
    assert promoted.promotion["challenger"] == "tree" and promoted.parent == before.version
    assert promoted.n_learned == 600
    wait_until(
        lambda: store.promote_request(name) is None, timeout=10, what="the request removed once applied"
    )
    reference = references(events)["tree"]
    wait_until(
        lambda: httpx.get(base, timeout=5).json()["version"] == promoted.version, timeout=20, what="served"
    )
    for x in PROBE:
        answer = httpx.post(f"{base}/predict", json={"features": x}, timeout=5).json()
        assert answer["prediction"] == reference.predict_one(x)  # the former challenger, no relearning
    former = promoted.promotion["former"]
    assert former in promoted.challengers and "tree" not in promoted.challengers
    assert any(e["action"] == "promotion applied" for e in store.audit_log(name))
    listed = cli(env, "versions", name)
    assert f"champion=tree (was {former})" in listed.stdout, listed.stdout

    # a reset to a version before the promotion brings the old champion back
    reset = httpx.post(
        f"{base}/rollback", json={"version": before.version, "mode": "reset"}, headers=ADMIN, timeout=10
    )
    assert reset.status_code == 202
    back = wait_until(
        lambda: (
            (m := store.fetch_latest(name)[0]).parent == before.version and m.version > promoted.version and m
        ),
        timeout=30,
        what="the reset version",
    )
    wait_until(
        lambda: httpx.get(base, timeout=5).json()["version"] == back.version, timeout=20, what="served"
    )
    old = plain_river(events)
    for x in PROBE:
        answer = httpx.post(f"{base}/predict", json={"features": x}, timeout=5).json()
        assert answer["prediction"] == old.predict_one(x)
    refused = cli(env, "promote", name, "nope")
    assert refused.returncode == 2 and "no challenger 'nope'" in refused.stderr


ADMIN = {"X-API-Key": "admin-key"}


def agrawal(n: int) -> list[dict]:
    """A stream where a tree is clearly better than a linear model (rules over the features)."""
    return [
        {"features": x, "label": y}
        for x, y in datasets.synth.Agrawal(classification_function=0, seed=7).take(n)
    ]


def test_auto_promotion_fires_when_a_challenger_is_clearly_better_and_never_when_they_are_equal(
    env: Env, store: CheckpointStore
):
    auto = {"challengers": {"auto": True, "min_events": 500, "margin": 0.05, "significance": 0.01}}
    better, equal = f"{env.key_prefix}-b", f"{env.key_prefix}-e"
    write_spec(
        env.models_dir, name=better, topic=better, promotion=auto, challengers={"tree": CHALLENGERS["tree"]}
    )
    same = ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}]
    write_spec(env.models_dir, name=equal, topic=equal, promotion=auto, challengers={"same": same})
    events = agrawal(3000)
    env.start_trainer(better)
    env.start_trainer(equal)
    publish(events, better, env.kafka, progress=False)
    publish(events, equal, env.kafka, progress=False)

    promoted = wait_until(
        lambda: next((m for m in store.list_versions(better) if m.promotion), None),
        timeout=90,
        what="an automatic promotion",
    )
    assert promoted.promotion["challenger"] == "tree" and promoted.promotion["by"] == "auto"
    assert promoted.promotion["reason"].startswith("auto: Accuracy +")

    wait_until(lambda: learned(store, equal, 3000), timeout=90, what="the equal stream learned")
    assert not any(m.promotion for m in store.list_versions(equal))
    assert not any(e["action"].startswith("promot") for e in store.audit_log(equal))
    row = store.fetch_latest(equal)[0].challengers["same"]
    assert row["paired"]["difference"] == 0 and row["metrics"] == store.fetch_latest(equal)[0].metrics
