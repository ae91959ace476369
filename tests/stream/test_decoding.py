import orjson
import pytest

import stream.decoding
from stream.decoding import BadEvent, LabelOnly, decode, decode_many


def raw(obj) -> bytes:
    return orjson.dumps(obj)


def test_valid_event_decodes_to_features_and_label():
    x, y = decode(
        raw({"id": "a", "ts": 1.5, "features": {"a": 1.0, "b": "red", "c": True}, "label": True}),
        "classification",
    )
    assert x == {"a": 1.0, "b": "red", "c": True}
    assert y is True


def test_null_features_are_dropped_as_missing():
    x, _ = decode(raw({"features": {"a": 1, "b": None}, "label": 2.5}), "regression")
    assert x == {"a": 1}


@pytest.mark.parametrize(
    ("payload", "reason_start"),
    [
        (b"not json at all", "not JSON"),
        (b'{"features": {"a": 1}, "label": ', "not JSON"),
        (b"", "empty message"),
        (raw({"features": {"a": 1}}), "schema: field 'label'"),
        (raw({"label": 1}), "schema: field '(top level)': Value error, 'features' is required"),
        (raw({"features": {}, "label": 1}), "schema: field 'features'"),
        (raw({"features": {"a": [1, 2]}, "label": 1}), "schema: field 'features.a"),
        (raw({"features": {"a": 1}, "label": {"nested": 1}}), "schema: field 'label"),
        (raw([1, 2, 3]), "schema"),
    ],
)
def test_malformed_events_are_rejected_with_a_reason(payload, reason_start):
    with pytest.raises(BadEvent) as info:
        decode(payload, "classification")
    assert info.value.reason.startswith(reason_start), info.value.reason


@pytest.mark.parametrize("label", ["spam", True, 3, 4.0])
def test_classification_accepts_class_labels(label):
    assert decode(raw({"features": {"a": 1}, "label": label}), "classification")[1] == label


@pytest.mark.parametrize("label", [0.5])
def test_classification_rejects_fractional_labels(label):
    with pytest.raises(BadEvent, match="does not fit a classification model"):
        decode(raw({"features": {"a": 1}, "label": label}), "classification")


@pytest.mark.parametrize("label", ["high", True, False])
def test_regression_rejects_non_numeric_labels(label):
    with pytest.raises(BadEvent, match="does not fit a regression model"):
        decode(raw({"features": {"a": 1}, "label": label}), "regression")


@pytest.mark.parametrize("label", [3, 2.75, -1e6])
def test_regression_accepts_numbers(label):
    assert decode(raw({"features": {"a": 1}, "label": label}), "regression")[1] == label


def test_label_only_event_with_an_id_is_announced_for_the_join():
    with pytest.raises(LabelOnly) as info:
        decode(raw({"id": "p-1", "label": True}), "classification")
    assert (info.value.id, info.value.label) == ("p-1", True)


def test_label_only_event_still_needs_a_label_that_fits_the_task():
    with pytest.raises(BadEvent, match="does not fit a regression model"):
        decode(raw({"id": "p-1", "label": "high"}), "regression")


def test_decoding_many_refuses_what_breaks_the_decoder_and_goes_on(monkeypatch: pytest.MonkeyPatch):
    """The fetcher decodes: one value that makes the decoder itself fail must not stop it."""
    real = stream.decoding.decode

    def flaky(raw, task):
        if raw == b"boom":
            raise RecursionError("maximum recursion depth exceeded")
        return real(raw, task)

    monkeypatch.setattr(stream.decoding, "decode", flaky)
    good = orjson.dumps({"features": {"a": 1.0}, "label": 1})
    first, broken, last = decode_many([good, b"boom", good], "classification")
    assert first == last == ({"a": 1.0}, 1)
    assert isinstance(broken, BadEvent) and broken.reason.startswith("cannot decode: RecursionError")
