"""The predict fast path against the FastAPI route it stands in for: two replicas in-process on
one real redis-server, one with the fast path and one without, asked the same things."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import orjson
import pytest
from fastapi.testclient import TestClient
from river import compose, datasets, linear_model, preprocessing

import api.routes.predict
from api.prediction_log import PredictionLog
from model_store.event_schema import MAX_FEATURES, MAX_STRING_LENGTH
from model_store.snapshot import SnapshotMeta, dump_state
from model_store.store import CheckpointStore
from tests.helpers.factories import model_spec
from tests.helpers.processes import wait_until
from tests.helpers.prometheus import sample
from tests.helpers.replicas import api_client

ROWS = list(datasets.Phishing().take(300))
KEY = "predict-secret"


class LogRecords:
    """Stands in for the Kafka prediction log: keeps what the replica hands it."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict]] = []

    def submit(self, topic: str, key: str, record: dict) -> None:
        self.records.append((topic, key, record))

    def submit_prediction(self, topic: str, key: str, answer: bytes, features: dict) -> None:
        """The record as the real log serialises it, read back; one it cannot serialise (an
        integer beyond 64 bits, a lone surrogate: the route's parser lets them by) is not kept."""
        log = PredictionLog("127.0.0.1:1", {})  # never started: submit only queues
        log.submit_prediction(topic, key, answer, features)
        if not log._pending:
            assert log.dropped == 1
            return
        head, record = log._pending.pop().split(b"\n", 1)
        assert orjson.loads(head) == [topic, key]
        self.submit(topic, key, orjson.loads(record))


@contextmanager
def replicas(store: CheckpointStore, prefix: str, **settings: str) -> Iterator[tuple[TestClient, TestClient]]:
    """(with the fast path, without it), both serving the model published first."""
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in ROWS[:200]:
        model.learn_one(x, y)
    meta = SnapshotMeta(model="clf", task="classification", topic="clf", n_learned=200)
    meta = store.publish(meta, dump_state({"model": model}), keep=5)
    specs = {"clf": model_spec("clf"), "empty": model_spec("empty", "regression")}
    with ExitStack() as stack:
        pair = []
        for fast in (True, False):
            client = stack.enter_context(api_client(store, prefix, specs, fast_predict=fast, **settings))
            client.app.state.responder.prediction_log = LogRecords()
            wait_until(
                lambda c=client: c.get("/models/clf").json().get("version") == meta.version, timeout=10
            )
            pair.append(client)
        yield pair[0], pair[1]


@pytest.fixture
def pair(store: CheckpointStore, prefix: str) -> Iterator[tuple[TestClient, TestClient]]:
    with replicas(store, prefix) as clients:
        yield clients


@pytest.fixture
def route_calls(monkeypatch) -> list[dict]:
    """Features the FastAPI route predicted with (the fast path does not call it)."""
    calls: list[dict] = []
    original = api.routes.predict.predict_one

    def counting(served, features):
        calls.append(features)
        return original(served, features)

    monkeypatch.setattr(api.routes.predict, "predict_one", counting)
    return calls


def post(
    client: TestClient, raw: bytes, content_type: str | None = "application/json", path="/models/clf/predict"
):
    headers = {"content-type": content_type} if content_type else {}
    return client.post(path, content=raw, headers=headers)


def test_answers_and_logged_records_are_the_routes(pair, route_calls):
    fast, reference = pair
    for i, (x, _) in enumerate(ROWS[200:260]):
        body = {"features": x, "id": f"r{i}"} if i % 2 else {"features": x}
        answers = [c.post("/models/clf/predict", json=body) for c in (fast, reference)]
        assert [a.status_code for a in answers] == [200, 200]
        a, b = (r.json() for r in answers)
        assert len(a["id"]) == 32 if i % 2 == 0 else a["id"] == f"r{i}"
        assert {**a, "id": None} == {**b, "id": None}
    assert len(route_calls) == 60  # the reference replica's only: the fast one never reached the route

    def logged(client):
        return [
            (t, {**r, "ts": None, "id": None})
            for t, _, r in client.app.state.responder.prediction_log.records
        ]

    assert logged(fast) == logged(reference) and len(logged(fast)) == 60
    assert logged(fast)[0][0] == "clf.predictions"


BAD_BODIES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'{"features": "x"}',
    b'{"features": {"a": [1]}}',
    b'{"features": {"a": 1}, "extra": 1}',
    b'{"features": {"a": 1}, "id": 5}',
    b'{"features": {"a": NaN}}',
    b'{"features": {"a": Infinity}}',
    b'{"features": {"a": 1e999}}',
    b'{"features": {"a": 1}',
    b'{"features": {"a": "caf\xe9"}}',  # not UTF-8
    '{"features": {"a": 1}}'.encode("utf-16"),
    b"[" * 100_000,  # deeper than the parser's recursion limit
    b'{"features": {"a": "' + b"x" * (MAX_STRING_LENGTH + 1) + b'"}}',
    b'{"features": {"' + b"k" * (MAX_STRING_LENGTH + 1) + b'": 1}}',
    b'{"features": {"a": 1}, "id": "' + b"i" * (MAX_STRING_LENGTH + 1) + b'"}',
    orjson.dumps({"features": {f"f{i}": 1 for i in range(MAX_FEATURES + 1)}}),
    b'{"features": {"long_url": "very"}}',  # valid, but the model cannot use it
]


@pytest.mark.parametrize("raw", BAD_BODIES)
def test_refused_bodies_get_the_routes_422(pair, raw: bytes):
    fast, reference = pair
    a, b = post(fast, raw), post(reference, raw)
    assert a.status_code == b.status_code == 422
    assert a.json() == b.json()


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"features": {"long_url": 1}}', None),
        (b'{"features": {"long_url": 1}}', "text/plain"),
        (b'{"features": {"long_url": 1}}', "application/json; charset=utf-8"),
        (b'{"features": {"long_url": 1}}', "application/vnd.test+json"),
        (b'{"features": {"long_url": 18446744073709551616}}', "application/json"),
        (b'{"features": {"long_url": "\\ud800"}}', "application/json"),
        (b'\xef\xbb\xbf{"features": {"long_url": 1}, "id": "bom"}', "application/json"),
        (b'{"features": {"long_url": 1, "long_url": 0}, "id": "dup"}', "application/json"),
        (b'{"features": {}, "id": "none"}', "application/json"),
    ],
)
def test_unusual_requests_get_the_routes_answer(pair, raw: bytes, content_type: str | None):
    fast, reference = pair
    a, b = post(fast, raw, content_type), post(reference, raw, content_type)
    assert a.status_code == b.status_code
    if a.status_code == 200 and "id" not in orjson.loads(raw.removeprefix(b"\xef\xbb\xbf")):
        assert {**a.json(), "id": None} == {**b.json(), "id": None}
    else:
        assert a.json() == b.json()


def test_unknown_model_and_nothing_served_are_the_routes_errors(pair):
    fast, reference = pair
    for path in ("/models/nope/predict", "/models/empty/predict", "/models//predict", "/models/clf/predict/"):
        a, b = (c.post(path, json={"features": {"long_url": 1}, "id": "x"}) for c in pair)
        assert (a.status_code, a.json()) == (b.status_code, b.json()), path
    assert fast.post("/models/empty/predict", json={"features": {}}).status_code == 503


def test_the_predict_key_is_asked_alike(store: CheckpointStore, prefix: str):
    body = orjson.dumps({"features": ROWS[0][0], "id": "k"})
    variants = [
        {},
        {"X-API-Key": "wrong"},
        {"X-API-Key": KEY},
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer {KEY}"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": "Bearer"},
        {"X-API-Key": "", "Authorization": f"Bearer {KEY}"},
        {"X-API-Key": "wrong", "Authorization": f"Bearer {KEY}"},
    ]
    with replicas(store, prefix, predict_key=KEY) as (fast, reference):
        for headers in variants:
            headers = {"content-type": "application/json", **headers}
            a, b = (c.post("/models/clf/predict", content=body, headers=headers) for c in (fast, reference))
            assert (a.status_code, a.json(), a.headers.get("www-authenticate")) == (
                b.status_code,
                b.json(),
                b.headers.get("www-authenticate"),
            ), headers


def test_metrics_count_every_answered_request_once(pair):
    fast, _ = pair
    for x, _ in ROWS[:40]:
        assert fast.post("/models/clf/predict", json={"features": x}).status_code == 200
    for raw in BAD_BODIES[:5]:
        assert post(fast, raw).status_code == 422  # refused: neither counted nor timed
    batch = fast.post("/models/clf/predict/batch", json={"instances": [{"features": x} for x, _ in ROWS[:7]]})
    assert batch.status_code == 200
    version = str(batch.json()["version"])
    text = fast.get("/metrics").text
    assert sample(text, "streamlearn_predictions_total", model="clf", version=version) == 47
    assert sample(text, "streamlearn_predict_seconds_count", model="clf") == 41
    assert sample(text, "streamlearn_predict_seconds_bucket", model="clf", le="+Inf") == 41
    assert fast.get("/models/clf/monitors").json()["data_drift"]["samples"] == 47


def test_openapi_still_describes_the_predict_body_and_key(pair):
    fast, reference = pair
    schema = fast.get("/openapi.json").json()
    assert schema == reference.get("/openapi.json").json()
    operation = schema["paths"]["/models/{name}/predict"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PredictRequest"}
    assert {"features", "id"} == set(schema["components"]["schemas"]["PredictRequest"]["properties"])
    assert {name for s in operation["security"] for name in s} == {"PredictKey", "PredictBearer"}
