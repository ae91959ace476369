"""Dependencies declared once and used by name in route signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

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
