"""Predictions: read-only use of one immutable snapshot per request."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from api.deps import ManagerDep, ServingMonitorDep, require_predict_key, served_or_error
from api.manager import ModelManager, Served
from api.predicting import UnusableFeatures, predict_features
from api.prediction_log import PredictionLog
from api.schemas import BatchRequest, BatchResponse, PredictRequest, PredictResponse, errors

router = APIRouter(prefix="/models", tags=["predict"], dependencies=[Depends(require_predict_key)])
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


def _log(
    log_: PredictionLog | None,
    manager: ModelManager,
    served: Served,
    id_: str,
    features: dict,
    result: dict[str, Any],
) -> None:
    """Hand the served prediction to the log (never blocks) when the model's YAML wants it."""
    if log_ is None:
        return
    spec = manager.specs[served.name]
    if not spec.delayed_labels.log_predictions:
        return
    record = {
        "id": id_,
        "model": served.name,
        "version": served.version,
        "features": features,
        "ts": time.time(),
        **result,
    }
    log_.submit(spec.predictions_topic, id_, record)


@router.post("/{name}/predict", response_model=PredictResponse, responses=errors(401, 404, 413, 503))
async def predict(
    name: str, body: PredictRequest, manager: ManagerDep, monitor: ServingMonitorDep, request: Request
) -> Response:
    """Predict one instance with the served version; the response names that version and the id
    to send the label with later."""
    started = time.perf_counter()
    served = served_or_error(manager, name)
    result = predict_one(served, body.features)
    id_ = body.id or uuid.uuid4().hex
    _log(request.app.state.prediction_log, manager, served, id_, body.features, result)
    monitor.observe(served, (body.features,), time.perf_counter() - started)
    return _json({"model": name, "version": served.version, "id": id_, **result})


@router.post("/{name}/predict/batch", response_model=BatchResponse, responses=errors(401, 404, 413, 503))
async def predict_batch(
    name: str, body: BatchRequest, manager: ManagerDep, monitor: ServingMonitorDep, request: Request
) -> Response:
    """Predict many instances, all with the same version."""
    started = time.perf_counter()
    served = served_or_error(manager, name)
    log_ = request.app.state.prediction_log
    predictions = []
    for inst in body.instances:
        result = predict_one(served, inst.features)
        id_ = inst.id or uuid.uuid4().hex
        _log(log_, manager, served, id_, inst.features, result)
        predictions.append({"id": id_, **result})
    monitor.observe(served, [inst.features for inst in body.instances], time.perf_counter() - started)
    return _json({"model": name, "version": served.version, "predictions": predictions})
