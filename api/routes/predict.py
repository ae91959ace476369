"""Predictions: read-only use of one immutable snapshot per request.

These routes are the reference: every error (404, 503, 401, 422 naming the field) is theirs,
and OpenAPI describes their bodies. Well-formed single predictions are usually answered
before the router by the fast path (api/fast_predict.py), which hands everything else here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from api.deps import ManagerDep, ResponderDep, require_predict_key, served_or_error
from api.json_body import JSONBodyRoute
from api.manager import Served
from api.predicting import UnusableFeatures, predict_features
from api.responder import JSON_OPTS
from api.schemas import BatchRequest, BatchResponse, PredictRequest, PredictResponse, errors

router = APIRouter(
    prefix="/models", tags=["predict"], dependencies=[Depends(require_predict_key)], route_class=JSONBodyRoute
)
log = logging.getLogger(__name__)


def predict_one(served: Served, features: dict) -> dict[str, Any]:
    """Predict with one snapshot; features it cannot use are the client's 422."""
    try:
        return predict_features(served.model, served.meta.task, features)
    except UnusableFeatures as exc:
        raise HTTPException(
            422, detail=f"model '{served.name}' v{served.version} cannot use these features: {exc}"
        ) from exc


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


@router.post("/{name}/predict", response_model=PredictResponse, responses=errors(401, 404, 413, 503))
async def predict(name: str, body: PredictRequest, manager: ManagerDep, responder: ResponderDep) -> Response:
    """Predict one instance with the served version; the response names that version and the id
    to send the label with later."""
    started = time.perf_counter()
    served = served_or_error(manager, name)
    result = predict_one(served, body.features)
    return _json(responder.answer(served, body.features, body.id, result, started))


@router.post("/{name}/predict/batch", response_model=BatchResponse, responses=errors(401, 404, 413, 503))
async def predict_batch(
    name: str, body: BatchRequest, manager: ManagerDep, responder: ResponderDep
) -> Response:
    """Predict many instances, all with the same version."""
    started = time.perf_counter()
    served = served_or_error(manager, name)
    predictions = []
    for inst in body.instances:
        result = predict_one(served, inst.features)
        id_ = inst.id or responder.new_id()
        responder.log(served, id_, inst.features, result)
        predictions.append({"id": id_, **result})
    responder.monitor.observe(
        served, [inst.features for inst in body.instances], time.perf_counter() - started
    )
    answer = {"model": name, "version": served.version, "predictions": predictions}
    return _json(orjson.dumps(answer, option=JSON_OPTS))
