"""Dependencies declared once and used by name in route signatures."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from api.feed import PointFeed
from api.manager import ModelManager, Served
from api.responder import Responder
from api.serving_monitor import ServingMonitor
from api.settings import ApiSettings

# Declared once so OpenAPI shows both ways of sending the admin key; neither fails on its own.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="AdminKey")
_bearer = HTTPBearer(auto_error=False, scheme_name="AdminBearer")


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def get_serving_monitor(request: Request) -> ServingMonitor:
    return request.app.state.serving_monitor


async def get_feed(request: Request) -> PointFeed:
    return request.app.state.feed


async def get_responder(request: Request) -> Responder:
    return request.app.state.responder


# Every dependency is async: FastAPI runs a plain function dependency in its thread pool, a hop
# that costs more than a whole prediction.
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
ServingMonitorDep = Annotated[ServingMonitor, Depends(get_serving_monitor)]
FeedDep = Annotated[PointFeed, Depends(get_feed)]
ResponderDep = Annotated[Responder, Depends(get_responder)]


async def require_admin(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """Admin endpoints need ``STREAMLEARN_ADMIN_KEY``; without a configured key they are disabled,
    never open. The key is compared in constant time."""
    expected = settings.admin_key.get_secret_value() if settings.admin_key else ""
    if not expected:
        raise HTTPException(
            403, detail="admin endpoints are disabled: set STREAMLEARN_ADMIN_KEY on the API to enable them"
        )
    given = api_key or (bearer.credentials if bearer else None)
    if not given:
        raise HTTPException(
            401,
            detail="admin key required: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, detail="wrong admin key")


# Router-level dependency (``APIRouter(dependencies=[AdminDep])``): every admin route, none forgotten.
AdminDep = Depends(require_admin)


def require_known(manager: ModelManager, name: str) -> None:
    if name not in manager.specs:
        raise HTTPException(404, detail=f"unknown model '{name}'; configured models: {sorted(manager.specs)}")


def served_or_error(manager: ModelManager, name: str) -> Served:
    """The model's served snapshot, or 404 (unknown model) / 503 (nothing loaded, and why)."""
    served = manager.get(name)
    if served is not None:
        return served
    require_known(manager, name)
    raise HTTPException(503, detail=manager.problems.get(name, f"model '{name}' is not loaded"))


def key_accepted(given: str | None, expected: SecretStr) -> bool:
    """A presented key against the configured one, in constant time; the predict key's one rule,
    shared with the fast path (api/fast_predict.py)."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


_predict_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="PredictKey")
_predict_bearer = HTTPBearer(auto_error=False, scheme_name="PredictBearer")


async def require_predict_key(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_predict_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_predict_bearer)],
) -> None:
    """Prediction endpoints are open unless STREAMLEARN_PREDICT_KEY is set (constant-time check)."""
    if settings.predict_key is None:
        return
    if not key_accepted(api_key or (bearer.credentials if bearer else None), settings.predict_key):
        raise HTTPException(
            401,
            detail="this endpoint needs an API key: send 'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
