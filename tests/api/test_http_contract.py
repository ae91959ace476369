"""HTTP contract of an API replica, in-process, against a real redis-server."""

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


def trained(n: int = 200):
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in datasets.Phishing().take(n):
        model.learn_one(x, y)
    return model


def publish(store: CheckpointStore, name: str, model, **meta_fields) -> SnapshotMeta:
    meta = SnapshotMeta(model=name, task="classification", topic=name, n_learned=200, **meta_fields)
    return store.publish(meta, dump_state({"model": model}), keep=5)


@pytest.fixture
def client(store: CheckpointStore, prefix: str) -> Iterator[TestClient]:
    specs = {"clf": model_spec("clf"), "empty": model_spec("empty", "regression")}
    with api_client(store, prefix, specs) as c:
        yield c


def test_unknown_model_is_404_naming_the_configured_ones(client: TestClient):
    r = client.post("/models/nope/predict", json={"features": {"a": 1}})
    assert r.status_code == 404
    assert "configured models: ['clf', 'empty']" in r.json()["detail"]
    assert client.get("/models/nope").status_code == 404
    assert client.get("/models/nope/versions").status_code == 404


def test_model_without_a_version_is_503_with_a_reason(client: TestClient):
    r = client.post("/models/empty/predict", json={"features": {"a": 1}})
    assert r.status_code == 503
    assert "no published version" in r.json()["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "empty" in ready.json()["not_ready"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "features"),
        ({"features": "x"}, "features"),
        ({"features": {"a": [1]}}, "a"),
        ({"features": {"a": 1}, "extra": 1}, "extra"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body, field):
    r = client.post("/models/clf/predict", json=body)
    assert r.status_code == 422
    assert any(field in [str(p) for p in err["loc"]] for err in r.json()["detail"]), r.json()


def test_published_version_is_served_and_named_in_every_response(client: TestClient, store: CheckpointStore):
    model = trained()
    meta = publish(store, "clf", model)
    wait_until(lambda: client.get("/models/clf").json().get("version") == meta.version, timeout=10)
    x = next(iter(datasets.Phishing()))[0]
    body = client.post("/models/clf/predict", json={"features": x}).json()
    assert body["version"] == meta.version
    assert body["prediction"] == model.predict_one(x)
    assert client.get("/models").json()[0]["version"] == meta.version
    assert client.get("/models/clf/versions").json()[0]["version"] == meta.version


def test_features_the_model_cannot_use_are_422_not_500(client: TestClient, store: CheckpointStore):
    meta = publish(store, "clf", trained())
    wait_until(lambda: client.get("/models/clf").json().get("version") == meta.version, timeout=10)
    r = client.post("/models/clf/predict", json={"features": {"long_url": "very"}})
    assert r.status_code == 422
    assert "cannot use these features" in r.json()["detail"]


def test_snapshot_from_another_river_version_is_refused_with_a_reason(
    client: TestClient, store: CheckpointStore
):
    good = publish(store, "clf", trained())
    wait_until(lambda: client.get("/models/clf").json().get("version") == good.version, timeout=10)
    bad = publish(store, "clf", trained(), river_version="0.0.1")
    problem = wait_until(lambda: client.get("/models/clf").json().get("problem"), timeout=10)
    assert f"v{bad.version}" in problem and "River 0.0.1" in problem
    # the replica keeps serving what it had
    assert client.get("/models/clf").json()["version"] == good.version


def test_prediction_never_changes_the_served_snapshot(client: TestClient, store: CheckpointStore):
    import pickle

    meta = publish(store, "clf", trained())
    wait_until(lambda: client.get("/models/clf").json().get("version") == meta.version, timeout=10)
    served = client.app.state.manager.get("clf")
    before = pickle.dumps(served.model)
    for x, _ in datasets.Phishing().take(300):
        assert client.post("/models/clf/predict", json={"features": x}).status_code == 200
    assert pickle.dumps(served.model) == before


@pytest.mark.parametrize(
    "raw", [b'{"features": {"a": "\\ud800"}}', b'{"features": {"\\udfff": []}}', b'{"id": "\\ud800x"}']
)
def test_lone_surrogates_are_a_422_not_a_500(client: TestClient, raw: bytes):
    """JSON may escape a lone surrogate; UTF-8 cannot carry one, so the 422 writes it escaped."""
    r = client.post("/models/clf/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"]
