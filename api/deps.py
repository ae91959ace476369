"""Dependencies declared once and used by name in route signatures."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from pydantic import SecretStr

from api.manager import ModelManager, Served
from model_store.settings import Settings


def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


ManagerDep = Annotated[ModelManager, Depends(get_manager)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


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


def presented_key(request: Request) -> str | None:
    """The API key a client sent: ``X-API-Key: K`` or ``Authorization: Bearer K``."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def key_matches(presented: str | None, expected: SecretStr) -> bool:
    """Constant-time comparison, so response timing says nothing about the key."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())


def require_predict_key(request: Request) -> None:
    """Prediction endpoints are open unless STREAMLEARN_PREDICT_KEY is set."""
    expected = request.app.state.settings.predict_key
    if expected is None:
        return
    if not key_matches(presented_key(request), expected):
        raise HTTPException(
            401,
            detail="this endpoint needs an API key: send X-API-Key or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
