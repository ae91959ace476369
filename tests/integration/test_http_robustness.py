"""Bad HTTP input: schemathesis against the running replica's OpenAPI, and explicit limits."""

from __future__ import annotations

import math

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from river import compose, datasets, linear_model, preprocessing
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.schemas import MAX_BATCH, MAX_BODY_BYTES
from model_store.events import MAX_FEATURES, MAX_STRING_LENGTH
from model_store.snapshot import SnapshotMeta, dump_state
from model_store.store import CheckpointStore
from tests.helpers.processes import SIGNING_KEY, Env, wait_until, write_spec


def serve_trained_model(env: Env, store: CheckpointStore, port: int) -> str:
    name = "clf"
    write_spec(env.models_dir, name=name, topic=f"{env.key_prefix}-clf")
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in datasets.Phishing().take(100):
        model.learn_one(x, y)
    meta = SnapshotMeta(model=name, task="classification", topic=name, n_learned=100)
    store.publish(meta, dump_state({"model": model}), keep=3, signing_key=SIGNING_KEY.encode())
    env.start_api(port)
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200,
        timeout=30,
        what="replica ready",
    )
    return f"http://127.0.0.1:{port}"


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def test_no_server_error_and_every_response_fits_the_schema(env: Env, store: CheckpointStore, port: int):
    """Every operation of the OpenAPI, fuzzed with schemathesis (valid and invalid inputs)."""
    base = serve_trained_model(env, store, port)
    api = schemathesis.openapi.from_url(f"{base}/openapi.json")
    # server-sent event streams never end: they have tests of their own
    operations = [r.ok() for r in api.get_all_operations() if not r.ok().path.endswith("/stream")]
    assert {op.path for op in operations} >= {"/models/{name}/predict", "/models/{name}/predict/batch"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            if "name" in (case.path_parameters or {}) and len(str(case.path_parameters["name"])) % 2 == 0:
                case.path_parameters["name"] = "clf"  # half the cases hit the real model
            case.call_and_validate(base_url=base, checks=CHECKS)

        fuzz()


@pytest.fixture
def base(env: Env, store: CheckpointStore, port: int) -> str:
    return serve_trained_model(env, store, port)


def test_body_over_the_size_limit_is_413_naming_the_limit(base: str):
    big = b'{"features": {"a": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}}'
    r = httpx.post(f"{base}/models/clf/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert str(MAX_BODY_BYTES) in r.json()["detail"]


def test_too_many_features_is_422_naming_the_limit(base: str):
    features = {f"f{i}": 1.0 for i in range(MAX_FEATURES + 1)}
    r = httpx.post(f"{base}/models/clf/predict", json={"features": features})
    assert r.status_code == 422
    assert str(MAX_FEATURES) in r.text


def test_batch_over_the_limit_is_422_naming_the_limit(base: str):
    r = httpx.post(
        f"{base}/models/clf/predict/batch", json={"instances": [{"features": {"a": 1}}] * (MAX_BATCH + 1)}
    )
    assert r.status_code == 422
    assert str(MAX_BATCH) in r.text


def test_long_strings_are_422_naming_the_limit(base: str):
    r = httpx.post(f"{base}/models/clf/predict", json={"features": {"a": "x" * (MAX_STRING_LENGTH + 1)}})
    assert r.status_code == 422
    assert str(MAX_STRING_LENGTH) in r.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_by_rule(base: str, literal: str):
    body = '{"features": {"long_url": ' + literal + "}}"
    r = httpx.post(f"{base}/models/clf/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "finite" in r.text


def test_unusable_features_never_produce_a_non_finite_probability(base: str):
    r = httpx.post(f"{base}/models/clf/predict", json={"features": {"long_url": 1e300, "https": -1e300}})
    assert r.status_code == 200
    assert all(math.isfinite(p) for p in r.json()["proba"].values())
