"""One prediction as the trainer's model would make it: the class is River's own choice."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.predicting import UnusableFeatures, predict_clean, predict_features


class Fixed:
    """A classifier whose probabilities are given; it records what it was asked with."""

    def __init__(self, proba: dict) -> None:
        self.proba = proba
        self.seen: list[dict] = []

    def predict_proba_one(self, x: dict) -> dict:
        self.seen.append(x)
        return self.proba


labels = st.one_of(st.booleans(), st.integers(-3, 3), st.text(max_size=2))
probas = st.dictionaries(labels, st.floats(allow_nan=True), max_size=5)


@given(proba=probas)
@settings(max_examples=400, deadline=None, database=None)
def test_the_class_is_what_rivers_predict_one_picks(proba):
    expected = max(proba, key=proba.get) if proba else None  # River's Classifier.predict_one
    got = predict_clean(Fixed(proba), "classification", {"a": 1})
    assert got["proba"] is proba
    assert got["prediction"] == expected and type(got["prediction"]) is type(expected)


@pytest.mark.parametrize(
    ("proba", "expected"),
    [
        ({"a": 0.5, "b": 0.5}, "a"),  # the first of equal ones
        ({"a": 0.2, "b": 0.5, "c": 0.5}, "b"),
        ({"a": math.nan, "b": 0.9}, "a"),  # nothing is greater than NaN, as in max
        ({False: 0.4, True: 0.6}, True),
        ({}, None),
    ],
)
def test_ties_nan_and_no_class(proba, expected):
    assert predict_clean(Fixed(proba), "classification", {})["prediction"] == expected


def test_null_features_are_dropped_and_incomparable_probabilities_are_unusable():
    model = Fixed({"a": 0.5})
    predict_features(model, "classification", {"x": 1.0, "y": None})
    assert model.seen == [{"x": 1.0}]
    with pytest.raises(UnusableFeatures):
        predict_clean(Fixed({"a": 0.5, "b": None}), "classification", {})
