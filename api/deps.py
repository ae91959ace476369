"""Dependencies declared once and used by name in route signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.feed import PointFeed
from api.manager import ModelManager, Served
from api.monitoring import ServingMonitor
from model_store.settings import Settings


def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_serving_monitor(request: Request) -> ServingMonitor:
    return request.app.state.serving_monitor


async def get_feed(request: Request) -> PointFeed:
    return request.app.state.feed


ManagerDep = Annotated[ModelManager, Depends(get_manager)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# async: FastAPI runs a plain function dependency in the thread pool, too dear per prediction
ServingMonitorDep = Annotated[ServingMonitor, Depends(get_serving_monitor)]
FeedDep = Annotated[PointFeed, Depends(get_feed)]


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
