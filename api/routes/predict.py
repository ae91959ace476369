"""Predictions: read-only use of one immutable snapshot per request."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from api.deps import ManagerDep, ServingMonitorDep, served_or_error
from api.manager import Served
from api.schemas import BatchRequest, BatchResponse, PredictRequest, PredictResponse
from model_store.events import clean_features

router = APIRouter(prefix="/models", tags=["predict"])
log = logging.getLogger(__name__)
_JSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def predict_one(served: Served, features: dict) -> dict[str, Any]:
    """The prediction the trainer's ``predict_one`` would make, plus class probabilities."""
    model = served.model
    x = clean_features(features)
    try:
        if served.meta.task == "classification":
            proba = model.predict_proba_one(x)
            prediction = max(proba, key=proba.get) if proba else None
            return {"prediction": prediction, "proba": proba}
        return {"prediction": model.predict_one(x)}
    except (TypeError, ValueError, KeyError) as exc:
        raise HTTPException(
            422,
            detail=f"model '{served.name}' v{served.version} cannot use these features: "
            f"{type(exc).__name__}: {exc}",
        ) from exc


def _json(body: dict) -> Response:
    return Response(orjson.dumps(body, option=_JSON_OPTS), media_type="application/json")


@router.post("/{name}/predict", response_model=PredictResponse)
async def predict(
    name: str, body: PredictRequest, manager: ManagerDep, monitor: ServingMonitorDep
) -> Response:
    """Predict one instance with the served version; the response names that version."""
    started = time.perf_counter()
    served = served_or_error(manager, name)
    result = predict_one(served, body.features)
    monitor.observe(served, (body.features,), time.perf_counter() - started)
    return _json({"model": name, "version": served.version, **result})


@router.post("/{name}/predict/batch", response_model=BatchResponse)
async def predict_batch(
    name: str, body: BatchRequest, manager: ManagerDep, monitor: ServingMonitorDep
) -> Response:
    """Predict many instances, all with the same version."""
    started = time.perf_counter()
    served = served_or_error(manager, name)
    predictions = [predict_one(served, inst.features) for inst in body.instances]
    monitor.observe(served, [inst.features for inst in body.instances], time.perf_counter() - started)
    return _json({"model": name, "version": served.version, "predictions": predictions})
