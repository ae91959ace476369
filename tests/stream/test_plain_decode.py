"""The fast path of ``decode`` accepts and refuses exactly what the Event model does."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model_store.event_schema import MAX_STRING_LENGTH
from stream.decoding import BadEvent, LabelOnly, _plain, decode, decode_validated

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.just("x" * (MAX_STRING_LENGTH + 1))
)
values = scalars | st.lists(scalars, max_size=2) | st.dictionaries(st.text(max_size=3), scalars, max_size=2)
features = (
    st.dictionaries(st.text(max_size=6) | st.just("k" * (MAX_STRING_LENGTH + 1)), values, max_size=6) | values
)
# Mostly plain events (what producers send), with every kind of scalar in every field.
plain_events = st.fixed_dictionaries(
    {"features": st.dictionaries(st.text(max_size=4), scalars, min_size=1, max_size=4), "label": scalars},
    optional={"id": scalars, "ts": scalars},
)
odd_events = st.fixed_dictionaries(
    {},
    optional={
        "features": features,
        "label": values,
        "id": values,
        "ts": values,
        "other": values,
    },
)
events = plain_events | odd_events


def outcome(decoder, raw: bytes, task: str):
    try:
        return ("ok", decoder(raw, task))
    except LabelOnly as label:
        return ("label-only", label.id, label.label)
    except BadEvent as exc:
        return ("bad", exc.reason)


@settings(max_examples=1500, deadline=None)
@given(events, st.sampled_from(["classification", "regression"]))
def test_fast_and_validated_paths_agree(event, task):
    raw = orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS) if _dumpable(event) else b"{}"
    assert outcome(decode, raw, task) == outcome(decode_validated, raw, task)


def _dumpable(event) -> bool:
    try:
        orjson.dumps(event)
    except orjson.JSONEncodeError:  # ints beyond 64 bits: orjson refuses to write them
        return False
    return True


@pytest.mark.parametrize(
    "event",
    [
        {"features": {"a": 1.5, "b": 2, "c": True, "d": "red"}, "label": True},
        {"features": {"a": 1.0, "b": None}, "label": 3, "id": "p-1", "ts": 1732600000.5},
        {"features": {"a": 1.0}, "label": "spam", "ts": "2026-11-26T12:00:00Z"},
    ],
)
def test_plain_events_take_the_fast_path(event):
    plain = _plain(orjson.loads(orjson.dumps(event)), "classification")
    assert plain is not None
    assert plain == decode_validated(orjson.dumps(event), "classification")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"features": {"a": 1e400}, "label": 1}',  # infinity
        b'{"features": {"a": NaN}, "label": 1}',
        b'{"features": {"a": [1]}, "label": 1}',
        b'{"features": {}, "label": 1}',
        b'{"features": {"a": 1}, "label": 1.5}',
        b'{"id": "only-a-label", "label": 1}',
        b"not json",
    ],
)
def test_unusual_events_go_through_the_model(raw):
    doc = None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    assert doc is None or _plain(doc, "classification") is None
    assert outcome(decode, raw, "classification") == outcome(decode_validated, raw, "classification")
