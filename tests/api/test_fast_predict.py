"""The predict fast path on its own (no services): its body check never accepts what the
pydantic route would refuse or read differently, and as ASGI it answers, or hands the request
on with every message it read."""

from __future__ import annotations

import asyncio
import json
import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError
from river import compose, datasets, linear_model, preprocessing

from api.fast_predict import FastPredict, parse_body
from api.limits import BodySizeLimit
from api.manager import ModelManager, Served
from api.predicting import predict_features
from api.responder import Responder
from api.schemas import PredictRequest
from api.serving_monitor import ServingMonitor
from model_store.event_schema import MAX_FEATURES, MAX_STRING_LENGTH
from model_store.snapshot import SnapshotMeta
from model_store.specs import ModelSpec

# -- the body check against pydantic ---------------------------------------------------------

long_text = st.text(min_size=MAX_STRING_LENGTH - 1, max_size=MAX_STRING_LENGTH + 1)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(),  # NaN and infinities included: json.dumps writes them as NaN / Infinity
    st.text(max_size=4),
    long_text,
)
values = st.one_of(
    scalars, st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.none())
)
feature_maps = st.dictionaries(st.one_of(st.text(max_size=4), long_text), values, max_size=6)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"features": st.one_of(feature_maps, values)},
        optional={
            "id": st.one_of(st.none(), st.text(max_size=4), long_text, st.integers()),
            "extra": st.none(),
        },
    ),
    st.fixed_dictionaries({}, optional={"id": st.text(max_size=2)}),
    values,
)


def pydantic_reading(raw: bytes) -> PredictRequest | None:
    """What the route makes of a JSON body: FastAPI's json.loads, then the pydantic model."""
    try:
        return PredictRequest.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None


def typed(features: dict) -> list[tuple[str, object, type]]:
    """Keys in order, values and their exact types: what a River pipeline sees."""
    return [(k, v, type(v)) for k, v in features.items()]


def assert_read_alike(raw: bytes) -> tuple[dict, str | None, bool] | None:
    parsed = parse_body(raw)
    if parsed is not None:
        reference = pydantic_reading(raw)
        assert reference is not None, raw  # never accept what the route refuses
        features, id_, has_null = parsed
        assert typed(features) == typed(reference.features), raw  # nor read it differently
        assert id_ == reference.id
        assert has_null == (None in features.values())  # the nulls the fast path drops before predicting
    return parsed


@given(body=bodies)
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_the_fast_check_accepts_only_what_pydantic_accepts_and_reads_it_alike(body):
    assert_read_alike(json.dumps(body).encode())


finite = st.floats(allow_nan=False, allow_infinity=False)
common = st.fixed_dictionaries(
    {
        "features": st.dictionaries(
            st.text(max_size=8),
            st.one_of(
                st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), finite, st.text(max_size=8)
            ),
            max_size=12,
        )
    },
    optional={"id": st.one_of(st.none(), st.text(max_size=12))},
)


@given(body=common)
@settings(max_examples=300, deadline=None, database=None)
def test_the_common_shape_takes_the_fast_path(body):
    big_floats = any(type(v) is float and abs(v) >= 2**63 for v in body["features"].values())
    parsed = assert_read_alike(json.dumps(body).encode())
    assert (parsed is None) == big_floats  # only floats that could be >64-bit integers go the slow way


number_literals = st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?\Z")


@given(literal=number_literals)
@settings(max_examples=500, deadline=None, database=None)
def test_numbers_are_read_as_python_json_reads_them(literal):
    """orjson's number parser against json's: the same value and type, or the route's way."""
    raw = b'{"features": {"x": ' + literal.encode() + b"}}"
    parsed = assert_read_alike(raw)
    value = json.loads(literal)
    if isinstance(value, float) and not math.isinf(value) and abs(value) < 2**63:
        assert parsed is not None
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        assert parsed is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"[]",
        b'"features"',
        b"{}",
        b'{"features": "x"}',
        b'{"features": null}',
        b'{"features": {"a": [1]}}',
        b'{"features": {"a": {"b": 1}}}',
        b'{"features": {"a": 1}, "extra": 1}',
        b'{"features": {"a": 1}, "id": 5}',
        b'{"features": {"a": NaN}}',
        b'{"features": {"a": -Infinity}}',
        b'{"features": {"a": 1e999}}',
        b'{"features": {"a": 18446744073709551616}}',  # an int to json, a float to orjson
        b'{"features": {"a": -9223372036854775809}}',
        b'{"features": {"a": "\\ud800"}}',  # a lone surrogate: json takes it, orjson does not
        b'\xef\xbb\xbf{"features": {"a": 1}}',  # a byte order mark: json (bytes) skips it
        b'{"features": {"a": 1}',
        b'{"features": {"a": "' + b"x" * (MAX_STRING_LENGTH + 1) + b'"}}',
        b'{"features": {"' + b"k" * (MAX_STRING_LENGTH + 1) + b'": 1}}',
        b'{"features": {"a": 1}, "id": "' + b"i" * (MAX_STRING_LENGTH + 1) + b'"}',
        orjson.dumps({"features": {f"f{i}": 1 for i in range(MAX_FEATURES + 1)}}),
    ],
)
def test_bodies_the_fast_path_leaves_to_the_route(raw: bytes):
    assert parse_body(raw) is None


def test_limits_themselves_are_fine():
    at_limit = {
        "features": {"k" * MAX_STRING_LENGTH: "v" * MAX_STRING_LENGTH, **{f"f{i}": i for i in range(9_999)}},
        "id": "i" * MAX_STRING_LENGTH,
    }
    assert len(at_limit["features"]) == MAX_FEATURES
    assert assert_read_alike(orjson.dumps(at_limit)) is not None
    last_wins = b'{"features": {"a": 1, "a": 2.5}}'  # as json's
    assert assert_read_alike(last_wins) == ({"a": 2.5}, None, False)
    with_null = b'{"features": {"a": null, "b": 1}, "id": "x"}'
    assert assert_read_alike(with_null) == ({"a": None, "b": 1}, "x", True)


# -- as ASGI -----------------------------------------------------------------------------------

ROWS = list(datasets.Phishing().take(300))
KEY = "predict-secret"


def served_model() -> Served:
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in ROWS[:200]:
        model.learn_one(x, y)
    meta = SnapshotMeta(model="clf", task="classification", topic="clf", n_learned=200, version=3)
    return Served("clf", 3, meta, model, pinned=False, loaded_at=0.0)


@pytest.fixture(scope="module")
def served() -> Served:
    return served_model()


class Recorder:
    """The app behind the fast path: records what reaches it and the body it can read."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, list[dict]]] = []

    async def __call__(self, scope, receive, send) -> None:
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        self.calls.append((scope, messages))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})


def stack(served: Served, predict_key: str | None = None, max_bytes: int = 1 << 20):
    spec = ModelSpec.model_validate(
        {
            "name": "clf",
            "topic": "clf",
            "task": "classification",
            "pipeline": ["linear_model.LogisticRegression"],
            "metrics": ["Accuracy"],
        }
    )
    manager = ModelManager({"clf": spec}, store=None, signing_key=None)
    manager._served = {"clf": served}
    monitor = ServingMonitor(manager)
    inner = Recorder()
    fast = FastPredict(  # in front of the size limit, as in api/main.py
        BodySizeLimit(inner, max_bytes=max_bytes),
        manager,
        Responder(manager.specs, None, monitor),
        SecretStr(predict_key) if predict_key else None,
        max_bytes=max_bytes,
    )
    return fast, inner, monitor


def call(app, body_parts: list[bytes], path="/models/clf/predict", method="POST", headers=None, extra=()):
    """Run one request through ``app``; the body arrives in ``body_parts`` messages."""
    headers = headers if headers is not None else [(b"content-type", b"application/json")]
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": headers}
    incoming = [
        {"type": "http.request", "body": part, "more_body": i < len(body_parts) - 1}
        for i, part in enumerate(body_parts)
    ] + list(extra)
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = sent[0]["status"]
    return status, b"".join(m.get("body", b"") for m in sent[1:]), dict(sent[0]["headers"])


def test_answers_a_body_that_arrives_in_pieces(served: Served):
    app, inner, monitor = stack(served)
    x = ROWS[250][0]
    raw = orjson.dumps({"features": x, "id": "p1"})
    status, body, headers = call(app, [raw[:7], raw[7:20], raw[20:]])
    assert status == 200 and not inner.calls
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body)
    answer = orjson.loads(body)
    expected = predict_features(served.model, "classification", x)
    assert answer == {"model": "clf", "version": 3, "id": "p1", "prediction": expected["prediction"]} | {
        "proba": {str(k).lower(): v for k, v in expected["proba"].items()}
    }
    assert monitor._seen["clf"] == 1


def test_null_features_are_dropped_before_predicting_and_kept_in_the_window(served: Served):
    app, inner, monitor = stack(served)
    x = dict(ROWS[251][0])
    status, body, _ = call(app, [orjson.dumps({"features": {**x, "unknown": None, "long_url": None}})])
    assert status == 200 and not inner.calls
    del x["long_url"]
    expected = predict_features(served.model, "classification", x)
    assert orjson.loads(body)["proba"] == {str(k).lower(): v for k, v in expected["proba"].items()}
    assert list(monitor._windows["clf"])[-1] == {**x, "unknown": None, "long_url": None}


def test_generates_an_id_when_none_is_given(served: Served):
    app, _, _ = stack(served)
    ids = {orjson.loads(call(app, [orjson.dumps({"features": ROWS[0][0]})])[1])["id"] for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 and set(i) <= set("0123456789abcdef") for i in ids)


@pytest.mark.parametrize(
    ("parts", "kwargs"),
    [
        ([b'{"features": {"a": [1]}}'], {}),  # pydantic's 422
        ([b'{"features": ', b'{"a": NaN}}'], {}),
        ([b'{"features": {"long_url": "very"}}'], {}),  # the model cannot use it: the route's 422
        ([b'{"features": {"a": 1}}'], {"path": "/models/other/predict"}),  # not served here
        ([b'{"features": {"a": 1}}'], {"path": "/models/clf/predict/batch"}),
        ([b'{"features": {"a": 1}}'], {"method": "PUT"}),
        ([b'{"features": {"a": 1}}'], {"headers": []}),  # no content type
        ([b'{"features": {"a": 1}}'], {"headers": [(b"content-type", b"text/plain")]}),
    ],
)
def test_hands_on_everything_else_with_the_body_it_read(served: Served, parts, kwargs):
    app, inner, monitor = stack(served)
    status, body, _ = call(app, parts, **kwargs)
    assert (status, body) == (299, b"route")
    [(scope, messages)] = inner.calls
    assert b"".join(m["body"] for m in messages) == b"".join(parts)  # replayed, in order
    assert [m["more_body"] for m in messages] == [i < len(parts) - 1 for i in range(len(parts))]
    assert monitor._seen["clf"] == 0  # the route observes what it answers


def test_a_client_that_leaves_mid_body_is_handed_on_with_its_disconnect(served: Served):
    app, inner, _ = stack(served)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/models/clf/predict",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
    }
    incoming = [{"type": "http.request", "body": b'{"feat', "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return incoming.pop(0)

    async def send(message):
        pass

    asyncio.run(app(scope, receive, send))
    [(_, messages)] = inner.calls
    assert [m["type"] for m in messages] == ["http.request", "http.disconnect"]


@pytest.mark.parametrize(
    ("headers", "fast"),
    [
        ([], False),
        ([(b"x-api-key", b"wrong")], False),
        ([(b"x-api-key", KEY.encode())], True),
        ([(b"authorization", b"Bearer " + KEY.encode())], True),
        ([(b"authorization", b"bearer " + KEY.encode())], True),
        ([(b"authorization", b"Basic " + KEY.encode())], False),
        ([(b"x-api-key", b""), (b"authorization", b"Bearer " + KEY.encode())], True),
        ([(b"x-api-key", b"wrong"), (b"authorization", b"Bearer " + KEY.encode())], False),  # as the route
        ([(b"x-api-key", KEY.encode()), (b"x-api-key", b"wrong")], True),  # the first, as Starlette
    ],
)
def test_only_the_right_predict_key_takes_the_fast_path(served: Served, headers, fast):
    app, inner, _ = stack(served, predict_key=KEY)
    status, _, _ = call(
        app,
        [orjson.dumps({"features": ROWS[0][0]})],
        headers=[(b"content-type", b"application/json"), *headers],
    )
    assert (status == 200) == fast and bool(inner.calls) != fast


def test_the_size_limit_counts_a_chunked_body_the_fast_path_reads(served: Served):
    app, inner, _ = stack(served, max_bytes=1000)
    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    status, body, _ = call(app, [b'{"features": {"a": "', b"x" * 600, b"x" * 600, b'"}}'], headers=headers)
    assert status == 413 and b"1000" in body and not inner.calls
    status, _, _ = call(app, [orjson.dumps({"features": ROWS[0][0]})], headers=headers)
    assert status == 200


def test_a_body_over_the_limit_is_the_size_limits_413_however_it_arrives(served: Served):
    app, inner, monitor = stack(served, max_bytes=1000)
    raw = orjson.dumps({"features": {"a": "x" * 1200}})
    declared = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    chunked = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    for headers in (declared, chunked):  # by its Content-Length, or a chunked body read whole
        status, body, _ = call(app, [raw], headers=headers)
        assert status == 413 and b"1000" in body, headers
    assert not inner.calls and monitor._seen["clf"] == 0
