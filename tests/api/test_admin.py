"""Admin endpoints in-process against a real redis-server: the key, 404s naming versions, and
what rollback, unpin and tags change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from river import compose, datasets, linear_model, preprocessing

from model_store.snapshot import SnapshotMeta, dump_state
from model_store.store import CheckpointStore
from tests.helpers.factories import model_spec
from tests.helpers.processes import wait_until
from tests.helpers.replicas import api_client

KEY = "s3cret-admin-key"
GOOD = {"X-API-Key": KEY}
X = next(iter(datasets.Phishing()))[0]


def publish_versions(store: CheckpointStore, n: int, keep: int = 10) -> list[SnapshotMeta]:
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    out = []
    for i, (x, y) in enumerate(datasets.Phishing().take(n * 10)):
        model.learn_one(x, y)
        if i % 10 == 9:
            parent = out[-1].version if out else None
            meta = SnapshotMeta(
                model="clf", task="classification", topic="clf", n_learned=i + 1, parent=parent
            )
            out.append(store.publish(meta, dump_state({"model": model}), keep=keep))
    return out


def make_client(store: CheckpointStore, prefix: str, admin_key: str | None) -> TestClient:
    return api_client(store, prefix, {"clf": model_spec("clf")}, admin_key=admin_key)


@pytest.fixture
def client(store: CheckpointStore, prefix: str) -> Iterator[TestClient]:
    with make_client(store, prefix, KEY) as c:
        yield c


def served_version(client: TestClient) -> int | None:
    """The version that answers a prediction; None while the replica has none loaded (503)."""
    reply = client.post("/models/clf/predict", json={"features": X})
    return reply.json()["version"] if reply.status_code == 200 else None


ADMIN_CALLS = [
    ("post", "/models/clf/rollback", {"version": 1, "mode": "pin"}),
    ("post", "/models/clf/rollback", {"version": 1, "mode": "reset"}),
    ("post", "/models/clf/unpin", None),
    ("put", "/models/clf/versions/1/tag", {"label": "golden"}),
    ("delete", "/models/clf/versions/2/tag", None),
]


def snapshot_of_pointers(store: CheckpointStore) -> tuple:
    return (
        store.served_pointer("clf"),
        store.pin_reason("clf"),
        store.reset_request("clf"),
        store.tags("clf"),
        store.audit_log("clf"),
    )


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 401, "admin key required"),
        ({"X-API-Key": "wrong"}, 403, "wrong admin key"),
        ({"Authorization": "Bearer wrong"}, 403, "wrong admin key"),
        ({"Authorization": f"Basic {KEY}"}, 401, "admin key required"),
        ({"X-API-Key": KEY[:-1]}, 403, "wrong admin key"),
    ],
)
def test_a_missing_or_wrong_admin_key_is_refused_and_nothing_changes(
    client: TestClient, store: CheckpointStore, headers, status, detail
):
    publish_versions(store, 3)
    store.tag("clf", 2, "keep-me")
    store.pin("clf", 3, reason="baseline")
    wait_until(lambda: served_version(client) == 3, timeout=10)
    before = snapshot_of_pointers(store)
    for method, path, body in ADMIN_CALLS:
        r = client.request(method, path, json=body, headers=headers)
        assert r.status_code == status, (path, r.text)
        assert detail in r.json()["detail"]
    assert snapshot_of_pointers(store) == before
    assert served_version(client) == 3


def test_without_a_configured_key_admin_endpoints_are_disabled_not_open(store: CheckpointStore, prefix: str):
    publish_versions(store, 2)
    with make_client(store, prefix, None) as client:
        for headers in ({}, GOOD, {"Authorization": "Bearer "}):
            for method, path, body in ADMIN_CALLS:
                r = client.request(method, path, json=body, headers=headers)
                assert r.status_code == 403, r.text
                assert "admin endpoints are disabled: set STREAMLEARN_ADMIN_KEY" in r.json()["detail"]
    assert store.pinned("clf") is None and store.reset_request("clf") is None and store.tags("clf") == {}


def test_pin_unpin_and_tags_with_the_admin_key(client: TestClient, store: CheckpointStore):
    versions = publish_versions(store, 4)
    wait_until(lambda: served_version(client) == 4, timeout=10)
    r = client.post(
        "/models/clf/rollback",
        json={"version": 2, "reason": "v3 and v4 misbehave"},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 200, r.text
    assert (
        r.json()["mode"] == "pin" and r.json()["served_here"] == 2
    )  # this replica switched before answering
    assert served_version(client) == 2
    detail = client.get("/models/clf").json()
    assert detail["pinned"] is True and detail["metadata"]["parent"] == versions[0].version
    assert detail["pointers"] == {
        "latest": 4,
        "promoted": 4,
        "pinned": 2,
        "pin_reason": "v3 and v4 misbehave",
        "reset_pending": None,
    }
    assert detail["history"][0]["action"] == "pin" and detail["history"][0]["by"] == "api"

    assert client.put("/models/clf/versions/1/tag", json={"label": "golden"}, headers=GOOD).status_code == 200
    listed = {v["version"]: v for v in client.get("/models/clf/versions").json()}
    assert [listed[v]["parent"] for v in (1, 2, 3, 4)] == [None, 1, 2, 3]
    assert listed[1]["tag"] == "golden" and listed[2]["pinned"] and listed[2]["served"]
    assert listed[4]["promoted"] and not listed[4]["held"]

    r = client.post("/models/clf/unpin", headers=GOOD)
    assert r.json() == {"model": "clf", "unpinned": 2, "served_here": 4}
    assert served_version(client) == 4
    assert client.delete("/models/clf/versions/1/tag", headers=GOOD).json()["label"] is None
    assert store.tags("clf") == {}


def test_reset_is_recorded_for_the_trainer_and_shown_as_pending(client: TestClient, store: CheckpointStore):
    publish_versions(store, 3)
    r = client.post("/models/clf/rollback", json={"version": 1, "mode": "reset"}, headers=GOOD)
    assert r.status_code == 202, r.text
    assert r.json()["mode"] == "reset"
    request = store.reset_request("clf")
    assert request.version == 1 and request.by == "api"
    assert client.get("/models/clf").json()["pointers"]["reset_pending"] == 1


def test_rollback_to_an_unknown_or_expired_version_is_404_listing_the_versions(
    client: TestClient, store: CheckpointStore
):
    publish_versions(store, 6, keep=3)
    assert store.version_numbers("clf") == [4, 5, 6]
    for version in (2, 99):  # removed by retention; never published
        for mode in ("pin", "reset"):
            r = client.post("/models/clf/rollback", json={"version": version, "mode": mode}, headers=GOOD)
            assert r.status_code == 404, r.text
            detail = r.json()["detail"]
            assert detail["versions"] == [4, 5, 6] and detail["version"] == version
            assert f"no version {version}; retained versions: [4, 5, 6]" in detail["message"]
    r = client.put("/models/clf/versions/1/tag", json={"label": "x"}, headers=GOOD)
    assert r.status_code == 404 and r.json()["detail"]["versions"] == [4, 5, 6]
    assert store.pinned("clf") is None and store.reset_request("clf") is None


def test_admin_bodies_and_models_are_validated(client: TestClient):
    r = client.post("/models/clf/rollback", json={"version": 1, "mode": "undo"}, headers=GOOD)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "mode"
    r = client.post("/models/nope/rollback", json={"version": 1}, headers=GOOD)
    assert r.status_code == 404 and "configured models: ['clf']" in r.json()["detail"]
    r = client.put("/models/clf/versions/1/tag", json={"label": "has space"}, headers=GOOD)
    assert r.status_code == 422
