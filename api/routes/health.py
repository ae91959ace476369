"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ManagerDep
from api.json_body import JSONBodyRoute

router = APIRouter(tags=["health"], route_class=JSONBodyRoute)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "some model has no version loaded; see not_ready"}})
async def readyz(manager: ManagerDep, request: Request) -> JSONResponse:
    """200 once every configured model has a version loaded; 503 naming what is missing."""
    served = manager.served()
    missing = {n: manager.problems.get(n, "not loaded") for n in manager.specs if n not in served}
    body = {
        "ready": not missing,
        "models": {n: s.version for n, s in served.items()},
        "not_ready": missing,
        "store_reachable": manager.store_reachable,
    }
    full = {name: str(m) for name, m in manager.store_memory.items() if m.full}
    if full:  # still ready (the served versions stay), but new versions cannot arrive
        body["checkpoint_store_full"] = full
    prediction_log = request.app.state.prediction_log
    if prediction_log is not None:
        body["prediction_log"] = {
            "connected": prediction_log.connected,
            "sent": prediction_log.sent,
            "dropped": prediction_log.dropped,
        }
    return JSONResponse(body, status_code=200 if not missing else 503)
