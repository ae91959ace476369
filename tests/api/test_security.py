"""A pickle-based store must not run code it did not write."""

from __future__ import annotations

import pathlib
import pickle
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from river import linear_model

from model_store.snapshot import SnapshotMeta, dump_state, sign
from model_store.store import CheckpointStore
from tests.helpers.factories import model_spec
from tests.helpers.processes import wait_until
from tests.helpers.replicas import api_client

KEY = "the-real-signing-key"
SPEC = model_spec(pipeline=["linear_model.LogisticRegression"])


class Exploit:
    """Unpickling this creates ``marker``: stands for any code an attacker wants run."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def client(store: CheckpointStore, prefix: str) -> Iterator[TestClient]:
    with api_client(store, prefix, {"m": SPEC}, signing_key=KEY) as c:
        yield c


def write_raw_version(store: CheckpointStore, blob: bytes, meta: SnapshotMeta) -> int:
    """What an attacker with write access to Redis (but not the key) can do."""
    k = store.keys("m")
    version = int(store.client.incr(k.next_version))
    meta = meta.model_copy(update={"version": version})
    store.client.set(k.blob(version), blob)
    store.client.set(k.meta(version), meta.model_dump_json())
    store.client.zadd(k.versions, {str(version): version})
    store.client.set(k.latest, version)
    store.client.set(k.promoted, version)
    store.client.publish(k.channel, b'{"event": "version"}')
    return version


@pytest.mark.parametrize("signature", ["missing", "wrong key"])
def test_crafted_pickle_is_refused_and_never_executed(client, store, tmp_path, signature):
    good = store.publish(
        SnapshotMeta(model="m", task="classification", topic="m", n_learned=1),
        dump_state({"model": linear_model.LogisticRegression()}),
        keep=5,
        signing_key=KEY.encode(),
    )
    wait_until(lambda: client.get("/models/m").json().get("version") == good.version, timeout=10)

    marker = tmp_path / "code-ran"
    blob = pickle.dumps({"model": Exploit(marker)})
    meta = SnapshotMeta(model="m", task="classification", topic="m", n_learned=2)
    meta = sign(meta, blob, None if signature == "missing" else b"attacker-guess")
    bad_version = write_raw_version(store, blob, meta)

    problem = wait_until(
        lambda: client.get("/models/m").json().get("problem"), timeout=10, what="the refusal to be reported"
    )
    assert f"v{bad_version}" in problem
    assert ("not signed" if signature == "missing" else "signature does not match") in problem
    assert not marker.exists(), "the crafted pickle was unpickled"
    assert sum(client.app.state.manager.refused.values()) >= 1
    # the replica keeps serving the last good version
    r = client.post("/models/m/predict", json={"features": {"a": 1.0}})
    assert r.status_code == 200 and r.json()["version"] == good.version


def test_tampered_blob_with_a_reused_signature_is_refused(client, store, tmp_path):
    honest = dump_state({"model": linear_model.LogisticRegression()})
    meta = sign(SnapshotMeta(model="m", task="classification", topic="m", n_learned=1), honest, KEY.encode())
    marker = tmp_path / "code-ran"
    write_raw_version(store, pickle.dumps({"model": Exploit(marker)}), meta)
    problem = wait_until(
        lambda: "refused" in (p := client.get("/models").json()[0]["problem"] or "") and p,
        timeout=10,
        what="the refusal to be reported",
    )
    assert "digest does not match" in problem or "signature does not match" in problem
    assert not marker.exists()


def test_prediction_endpoints_can_require_a_key(store: CheckpointStore, prefix: str):
    store.publish(
        SnapshotMeta(model="m", task="classification", topic="m", n_learned=1),
        dump_state({"model": linear_model.LogisticRegression()}),
        keep=5,
        signing_key=KEY.encode(),
    )
    with api_client(store, prefix, {"m": SPEC}, signing_key=KEY, predict_key="predict-secret") as c:
        wait_until(lambda: c.get("/readyz").status_code == 200, timeout=10)
        body = {"features": {"a": 1.0}}
        assert c.post("/models/m/predict", json=body).status_code == 401
        assert c.post("/models/m/predict", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert (
            c.post("/models/m/predict", json=body, headers={"X-API-Key": "predict-secret"}).status_code == 200
        )
        bearer = {"Authorization": "Bearer predict-secret"}
        assert (
            c.post("/models/m/predict/batch", json={"instances": [body]}, headers=bearer).status_code == 200
        )
        assert c.get("/models/m").status_code == 200  # reading model state stays open
