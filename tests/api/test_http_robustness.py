"""Bad HTTP input: schemathesis against the running replica's OpenAPI, and explicit limits."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import httpx
import pytest
import schemathesis
from river import compose, datasets, linear_model, preprocessing
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.meta import TestPhase

from api.main import create_app
from api.schemas import MAX_BATCH, MAX_BODY_BYTES
from api.settings import ApiSettings
from model_store.event_schema import MAX_FEATURES, MAX_STRING_LENGTH
from model_store.snapshot import SnapshotMeta, dump_state
from model_store.store import CheckpointStore
from stream.local_services import KafkaServer, RedisServer, free_port
from tests.helpers.processes import SIGNING_KEY, Env, wait_until, write_spec

ADMIN_KEY = "robustness-admin-key"


def serve_trained_model(env: Env, store: CheckpointStore, port: int) -> str:
    """A replica with the admin key set, serving one trained classifier ``clf``."""
    name = "clf"
    write_spec(env.models_dir, name=name, topic=f"{env.key_prefix}-clf")
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in datasets.Phishing().take(100):
        model.learn_one(x, y)
    meta = SnapshotMeta(model=name, task="classification", topic=name, n_learned=100)
    store.publish(meta, dump_state({"model": model}), keep=3, signing_key=SIGNING_KEY.encode())
    env.start_api(port, STREAMLEARN_ADMIN_KEY=ADMIN_KEY)
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200,
        timeout=30,
        what="replica ready",
    )
    return f"http://127.0.0.1:{port}"


class Replica(NamedTuple):
    url: str
    store: CheckpointStore


@pytest.fixture(scope="module")
def replica(kafka: KafkaServer, redis_server: RedisServer, tmp_path_factory) -> Iterator[Replica]:
    """One replica for the whole module: nothing here needs a fresh one."""
    root = tmp_path_factory.mktemp("robustness")
    env = Env(kafka.bootstrap, redis_server.url, root / "models", f"t{uuid.uuid4().hex[:10]}", root / "logs")
    store = CheckpointStore.from_url(redis_server.url, env.key_prefix)
    try:
        yield Replica(serve_trained_model(env, store, free_port()), store)
    finally:
        env.stop_all()


@pytest.fixture(scope="module")
def base(replica: Replica) -> str:
    return replica.url


@pytest.fixture(scope="module")
def metric_points(replica: Replica) -> Iterator[None]:
    """A new metric point of ``clf`` every 0.1 s from now on, as a trainer appends them: the
    event streams have events to check."""
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.wait(0.1):
            n += 1
            point = {"time": time.time(), "n_learned": n, "version": 1, "events_per_s": 10.0}
            replica.store.append_metric_point("clf", {**point, "error_rate": {"state": "ok"}})

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    yield
    stop.set()
    producer.join()


# Exactly these checks, in the examples, coverage and fuzzing phases, over every operation, as an
# admin would call them: an undocumented status, content type or body fails the run.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CONFIG = {
    "headers": {"X-API-Key": ADMIN_KEY},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
    "checks": {"enabled": False, **{check.__name__: {"enabled": True} for check in CHECKS}},
    "generation": {"max-examples": 30, "database": "none"},
    "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
    "operations": [
        # An event stream never ends: judge its first event (metric_points sends one every 0.1 s),
        # or what came within the timeout.
        {"include-path-regex": "/stream$", "request-timeout": 2.0, "max-stream-events": 1},
    ],
}


def served_document() -> dict:
    """The replica's OpenAPI document, built in-process: schemathesis parametrizes tests at
    collection, before any replica runs (its fixture loader does not work with pytest 9).
    test_the_document_is_the_one_served holds it to what a replica serves."""
    settings = ApiSettings(signing_key=SIGNING_KEY, admin_key=ADMIN_KEY)
    return create_app(settings, specs={}, store=CheckpointStore.from_url(settings.redis_url, "doc")).openapi()


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))


@schema.parametrize()
@pytest.mark.usefixtures("metric_points")
def test_every_operation_keeps_to_its_documentation(case, base: str):
    """No server error, and every status, content type and body is the one documented."""
    name = (case.path_parameters or {}).get("name")
    if name is not None and (case.meta.phase.name == TestPhase.EXAMPLES or len(str(name)) % 2 == 0):
        case.path_parameters["name"] = "clf"  # the documented examples and half the rest: the real model
    case.call_and_validate(base_url=base, checks=CHECKS)


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


BODY_OPERATIONS = sorted(
    (method.upper(), path.replace("{name}", "clf").replace("{version}", "1"))
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if "requestBody" in operation
)
UNPARSABLE = {
    "not JSON": (b'{"features": {"a": 1},}', "Expecting property name enclosed in double quotes"),
    "not UTF-8": (
        b'{"features": {"a": "caf\xe9"}}',
        "body is not UTF-8 (invalid continuation byte at byte 23)",
    ),
    "UTF-16": ('{"version": 1}'.encode("utf-16"), "body is not UTF-8 (invalid start byte at byte 0)"),
    "nested too deeply": (b"[" * 100_000, "body is nested too deeply"),
}


def test_the_document_is_the_one_served(base: str):
    assert httpx.get(f"{base}/openapi.json").json() == DOCUMENT


def test_every_route_with_a_body_is_tested_for_unparsable_ones():
    assert {
        ("POST", "/models/clf/predict"),
        ("POST", "/models/clf/predict/batch"),
        ("POST", "/models/clf/rollback"),
        ("PUT", "/models/clf/versions/1/tag"),
    } <= set(BODY_OPERATIONS)


@pytest.mark.parametrize("problem", UNPARSABLE)
@pytest.mark.parametrize(("method", "path"), BODY_OPERATIONS)
def test_an_unparsable_body_is_the_documented_422_naming_the_problem(
    base: str, method: str, path: str, problem: str
):
    """The same answer on every route, the predict fast path's included."""
    raw, reason = UNPARSABLE[problem]
    r = httpx.request(
        method,
        f"{base}{path}",
        content=raw,
        headers={"content-type": "application/json", "X-API-Key": ADMIN_KEY},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"
    [error] = r.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["msg"] == f"JSON decode error: {reason}"
    assert error["loc"][0] == "body"
    documented = DOCUMENT["paths"][path.replace("clf", "{name}").replace("/1/", "/{version}/")][
        method.lower()
    ]
    assert "422" in documented["responses"]


@pytest.mark.parametrize("path", ["/monitors/stream", "/models/{name}/monitors/stream"])
def test_the_event_streams_are_documented_as_text_event_stream(base: str, path: str):
    served = httpx.get(f"{base}/openapi.json").json()
    ok = served["paths"][path]["get"]["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    assert ok["content"]["text/event-stream"]["itemSchema"]["properties"]["event"] == {"const": "point"}
    with httpx.stream("GET", f"{base}{path.replace('{name}', 'clf')}") as r:
        assert r.headers["content-type"].split(";")[0] == "text/event-stream"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/models/clf/rollback", {"version": 2**64}),
        ("POST", "/models/clf/rollback", {"version": -(2**70)}),
        ("DELETE", f"/models/clf/versions/{2**64}/tag", None),
        ("PUT", f"/models/clf/versions/{2**64}/tag", {"label": "x"}),
    ],
)
def test_a_version_beyond_64_bits_is_a_422_not_a_500(base: str, method: str, path: str, body: dict | None):
    """Versions are Redis integers; a larger one is out of range, and is not echoed (JSON
    writers stop at 64 bits)."""
    r = httpx.request(method, f"{base}{path}", json=body, headers={"X-API-Key": ADMIN_KEY})
    assert r.status_code == 422
    assert [e["loc"][-1] for e in r.json()["detail"]] == ["version"]
