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

    Null features are dropped first (River reads an absent feature as missing)."""
    return predict_clean(model, task, clean_features(features))


def predict_clean(model: Any, task: Task, x: dict) -> dict[str, Any]:
    """``predict_features`` for features that hold no null (the fast path knows from parsing).

    The class is the argmax of ``predict_proba_one``, the first of equal ones, which is
    what River's ``Classifier.predict_one`` returns (``max(proba, key=proba.get)``), so one
    call gives both; the loop spares the builtin's keyword parsing, a third of this call's
    own cost."""
    try:
        if task == "classification":
            proba = model.predict_proba_one(x)
            items = iter(proba.items())
            prediction, top = next(items, (None, None))
            for label, p in items:
                if p > top:
                    prediction, top = label, p
            return {"prediction": prediction, "proba": proba}
        return {"prediction": model.predict_one(x)}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UnusableFeatures(f"{type(exc).__name__}: {exc}") from exc
