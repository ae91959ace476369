"""Rollback end to end on the real Kafka and Redis: replicas, resets, the promotion gate and
auto-rollback, driven the way operators drive them (HTTP with the admin key, the CLI)."""

from __future__ import annotations

import asyncio
import pickle

import httpx
from river import compose, datasets, linear_model, preprocessing

from model_store.store import CheckpointStore
from stream.local_services import free_port
from stream.publish import publish
from tests.helpers.processes import Env, await_until, cli, wait_until, write_spec

KEY = "admin-key-for-tests"
ADMIN = {"X-API-Key": KEY}
PHISHING = [{"features": x, "label": y} for x, y in datasets.Phishing()]
PROBE = [e["features"] for e in PHISHING[:25]]
# A checkpoint exactly every 100 events: time never triggers one, so versions are predictable.
EXACT = {"every_events": 100, "every_seconds": 3600, "keep": 50}


def feed(env: Env, store: CheckpointStore, events: list[dict], total: int) -> None:
    """Publish ``events`` and wait until the trainer has learned ``total`` events in all."""
    publish(events, env.key_prefix, env.kafka, progress=False)
    wait_until(
        lambda: (m := store.fetch_latest(env.key_prefix)) and m[0].offsets.get(0) == total,
        timeout=60,
        what=f"offsets to reach {total}",
    )


def version_of(port: int, name: str) -> int | None:
    r = httpx.post(f"http://127.0.0.1:{port}/models/{name}/predict", json={"features": PROBE[0]}, timeout=10)
    return r.json()["version"] if r.status_code == 200 else None


def all_serve(ports: list[int], name: str, version: int, what: str) -> None:
    for port in ports:
        wait_until(lambda: version_of(port, name) == version, timeout=30, what=f"port {port}: {what}")  # noqa: B023


def test_pin_and_unpin_reach_every_replica_including_one_started_after_the_pin(
    env: Env, store: CheckpointStore
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name, checkpoint=EXACT)
    env.start_trainer(name)
    feed(env, store, PHISHING[:300], 300)
    a, b, late = free_port(), free_port(), free_port()
    env.start_api(a, STREAMLEARN_ADMIN_KEY=KEY)
    env.start_api(b, STREAMLEARN_ADMIN_KEY=KEY)
    all_serve([a, b], name, 3, "the newest version")

    r = httpx.post(f"http://127.0.0.1:{a}/models/{name}/rollback", json={"version": 1}, headers=ADMIN)
    assert r.status_code == 200, r.text
    all_serve([a, b], name, 1, "the pinned version")

    feed(env, store, PHISHING[300:500], 500)  # the trainer keeps learning and recording
    assert store.latest_version(name) == 5
    env.start_api(late, STREAMLEARN_ADMIN_KEY=KEY)  # was not running when the pin happened
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{late}/readyz").status_code == 200, timeout=30)
    assert {version_of(p, name) for p in (a, b, late)} == {1}
    listed = httpx.get(f"http://127.0.0.1:{late}/models/{name}/versions").json()
    assert [(v["version"], v["parent"], v["pinned"]) for v in listed] == [
        (5, 4, False),
        (4, 3, False),
        (3, 2, False),
        (2, 1, False),
        (1, None, True),
    ]

    r = httpx.post(f"http://127.0.0.1:{b}/models/{name}/unpin", headers=ADMIN)
    assert r.json()["unpinned"] == 1
    all_serve([a, b, late], name, 5, "the newest version after unpin")

    # A pin whose announcement is lost (written without PUBLISH) still arrives by polling.
    store.client.set(store.keys(name).pinned, 2)
    all_serve([a, b, late], name, 2, "a pin seen only by polling")


def test_predictions_never_fail_during_pin_unpin_and_reset(env: Env, store: CheckpointStore):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name, checkpoint=EXACT)
    env.start_trainer(name)
    feed(env, store, PHISHING[:400], 400)
    ports = [free_port(), free_port()]
    for port in ports:
        env.start_api(port, STREAMLEARN_ADMIN_KEY=KEY)
    all_serve(ports, name, 4, "the newest version")

    async def during(change, involved: set[int], target: int) -> list[tuple[int, int | None]]:
        """Hammer both replicas while ``change`` runs until both serve ``target``."""
        results: list[tuple[int, int | None]] = []
        done = asyncio.Event()

        async def hammer(client: httpx.AsyncClient, port: int) -> None:
            url = f"http://127.0.0.1:{port}/models/{name}/predict"
            while not done.is_set():
                r = await client.post(url, json={"features": PROBE[len(results) % len(PROBE)]})
                results.append((r.status_code, r.json().get("version")))

        async with httpx.AsyncClient(timeout=10) as client:
            tasks = [asyncio.create_task(hammer(client, port)) for port in ports for _ in range(4)]
            await await_until(lambda: len(results) >= 20, what="requests flowing before the change")
            r = await change(client)
            assert r.status_code in (200, 202), r.text
            await asyncio.to_thread(all_serve, ports, name, target, f"v{target} while hammering")
            after = len(results)
            await await_until(lambda: len(results) >= after + 20, what="requests answered after it")
            done.set()
            await asyncio.gather(*tasks)
        assert {status for status, _ in results} == {200}
        assert {v for _, v in results} <= involved
        assert len(results) > 20
        return results

    base = f"http://127.0.0.1:{ports[0]}/models/{name}"
    asyncio.run(during(lambda c: c.post(f"{base}/rollback", json={"version": 2}, headers=ADMIN), {4, 2}, 2))
    asyncio.run(during(lambda c: c.post(f"{base}/unpin", headers=ADMIN), {2, 4}, 4))
    reset = {"version": 2, "mode": "reset"}
    results = asyncio.run(during(lambda c: c.post(f"{base}/rollback", json=reset, headers=ADMIN), {4, 5}, 5))
    assert {v for _, v in results} == {4, 5}
    assert store.meta(name, 5).parent == 2


def plain_river(events: list[dict]):
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for e in events:
        model.predict_one(e["features"])
        model.learn_one(e["features"], e["label"])
    return model


def test_reset_continues_from_version_n_with_the_current_offsets(env: Env, store: CheckpointStore):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name, checkpoint=EXACT)
    env.start_trainer(name)
    feed(env, store, PHISHING[:300], 300)
    v1 = store.meta(name, 1)
    assert v1.n_learned == 100

    done = cli(env, "rollback", name, "--to", "1", "--mode", "reset", "--reason", "bad labels after v1")
    assert done.returncode == 0, done.stderr
    reset, blob = wait_until(
        lambda: (m := store.fetch_latest(name)) and m[0].version == 4 and m,
        timeout=30,
        what="the reset version",
    )
    assert reset.parent == 1
    assert reset.n_learned == v1.n_learned  # N's events, plus the none learned since
    # N's drift detector and error-rate windows go on too (they are part of its state)
    scored_at_v1 = v1.monitors["error_rate"]["n"]
    assert reset.monitors is not None and reset.monitors["error_rate"]["n"] == scored_at_v1
    assert reset.offsets == {0: 300}  # the current offsets are kept
    model_v1 = pickle.loads(store.fetch(name, 1)[1])["model"]
    assert [pickle.loads(blob)["model"].predict_proba_one(x) for x in PROBE] == [
        model_v1.predict_proba_one(x) for x in PROBE
    ]
    assert store.reset_request(name) is None
    assert store.served_pointer(name).version == 4

    feed(env, store, PHISHING[300:500], 500)
    newest, blob = store.fetch_latest(name)
    assert newest.n_learned == v1.n_learned + 200  # N's events plus those learned since the reset
    assert newest.monitors["error_rate"]["n"] == scored_at_v1 + 200
    assert (newest.version, newest.parent) == (6, 5) and store.meta(name, 5).parent == 4
    # events 100..300 are not learned again: the model is N's plus the events after the reset
    reference = plain_river(PHISHING[:100] + PHISHING[300:500])
    assert [pickle.loads(blob)["model"].predict_proba_one(x) for x in PROBE] == [
        reference.predict_proba_one(x) for x in PROBE
    ]
    versions = cli(env, "versions", name)
    assert versions.returncode == 0, versions.stderr
    lines = {
        line.split()[0]: line.split() for line in versions.stdout.splitlines() if line.split()[0].isdigit()
    }
    assert lines["4"][1] == "1" and lines["4"][2] == "100"  # parent, events learned
    assert lines["6"][1] == "5" and "SERVED" in lines["6"]


def flipped(events: list[dict]) -> list[dict]:
    return [{"features": e["features"], "label": not e["label"]} for e in events]


def test_promotion_gate_holds_a_version_made_worse_on_purpose(env: Env, store: CheckpointStore, port: int):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name, checkpoint=EXACT, promotion={"tolerance": 0.1})
    env.start_trainer(name)
    env.start_api(port, STREAMLEARN_ADMIN_KEY=KEY)
    feed(env, store, PHISHING[:400], 400)
    all_serve([port], name, 4, "the newest healthy version")

    feed(env, store, flipped(PHISHING[400:600]), 600)  # labels flipped: rolling accuracy collapses
    assert store.latest_version(name) == 6
    held = store.held(name)
    assert {5, 6} <= set(held), held
    assert "worse than promoted v4's" in held[5]
    assert store.served_pointer(name).version == 4
    listed = {v["version"]: v for v in httpx.get(f"http://127.0.0.1:{port}/models/{name}/versions").json()}
    assert listed[6]["held"] and listed[6]["hold_reason"] == held[6] and listed[4]["promoted"]

    base = f"http://127.0.0.1:{port}/models/{name}"
    assert httpx.post(f"{base}/rollback", json={"version": 6}, headers=ADMIN).json()["served_here"] == 6
    assert version_of(port, name) == 6  # a pin serves a held version
    assert httpx.post(f"{base}/unpin", headers=ADMIN).json()["served_here"] == 4
    assert version_of(port, name) == 4  # unpinned: the gate's pick, not the newest

    feed(env, store, PHISHING[600:1200], 1200)  # the stream recovers
    newest = store.latest_version(name)
    assert newest not in store.held(name) and store.promoted(name) == newest
    all_serve([port], name, newest, "the recovered version")


def test_auto_rollback_pins_the_last_healthy_version_and_says_why(
    env: Env, store: CheckpointStore, port: int
):
    name = env.key_prefix
    promotion = {"tolerance": None, "auto_rollback": True, "alert_drop": 0.2}
    write_spec(env.models_dir, name=name, topic=name, checkpoint=EXACT, promotion=promotion)
    env.start_trainer(name)
    env.start_api(port)
    feed(env, store, PHISHING[:400], 400)
    assert store.pinned(name) is None
    feed(env, store, flipped(PHISHING[400:600]), 600)
    assert store.pinned(name) == 3
    assert store.pin_reason(name).startswith("auto-rollback: rolling Accuracy")
    all_serve([port], name, 3, "the auto-rolled-back version")
    pointers = httpx.get(f"http://127.0.0.1:{port}/models/{name}").json()["pointers"]
    assert pointers["pinned"] == 3 and "v4 was promoted after v3" in pointers["pin_reason"]
