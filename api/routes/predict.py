"""Predictions: read-only use of one immutable snapshot per request."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from api.deps import ManagerDep, served_or_error
from api.manager import Served
from api.predicting import UnusableFeatures, predict_features
from api.schemas import BatchRequest, BatchResponse, PredictRequest, PredictResponse, errors

router = APIRouter(prefix="/models", tags=["predict"])
log = logging.getLogger(__name__)
_JSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def predict_one(served: Served, features: dict) -> dict[str, Any]:
    """Predict with one snapshot; features it cannot use are the client's 422."""
    try:
        return predict_features(served.model, served.meta.task, features)
    except UnusableFeatures as exc:
        raise HTTPException(
            422, detail=f"model '{served.name}' v{served.version} cannot use these features: {exc}"
        ) from exc


def _json(body: dict) -> Response:
    return Response(orjson.dumps(body, option=_JSON_OPTS), media_type="application/json")


@router.post("/{name}/predict", response_model=PredictResponse, responses=errors(404, 413, 503))
async def predict(name: str, body: PredictRequest, manager: ManagerDep) -> Response:
    """Predict one instance with the served version; the response names that version."""
    served = served_or_error(manager, name)
    result = predict_one(served, body.features)
    return _json({"model": name, "version": served.version, **result})


@router.post("/{name}/predict/batch", response_model=BatchResponse, responses=errors(404, 413, 503))
async def predict_batch(name: str, body: BatchRequest, manager: ManagerDep) -> Response:
    """Predict many instances, all with the same version."""
    served = served_or_error(manager, name)
    predictions = [predict_one(served, inst.features) for inst in body.instances]
    return _json({"model": name, "version": served.version, "predictions": predictions})
