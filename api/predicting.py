"""One prediction, exactly as the trainer's model would make it: shared by the HTTP
routes and batch scoring."""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from model_store.event_schema import Task, clean_features


class UnusableFeatures(ApiError, ValueError):
    """The model cannot use these features (e.g. a string where it learned numbers)."""


def predict_features(model: Any, task: Task, features: dict) -> dict[str, Any]:
    """``{"prediction": ..., "proba": {...}}`` for a classifier, ``{"prediction": ...}`` otherwise.

    The class is the argmax of ``predict_proba_one``, which is what River's
    ``Classifier.predict_one`` returns, so one call gives both."""
    x = clean_features(features)
    try:
        if task == "classification":
            proba = model.predict_proba_one(x)
            prediction = max(proba, key=proba.get) if proba else None
            return {"prediction": prediction, "proba": proba}
        return {"prediction": model.predict_one(x)}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UnusableFeatures(f"{type(exc).__name__}: {exc}") from exc
