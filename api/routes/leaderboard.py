"""Champion and challengers side by side (the online A/B test)."""

from __future__ import annotations

import redis
from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from api.deps import ManagerDep, require_known
from api.json_body import JSONBodyRoute
from api.schemas import errors
from model_store.leaderboard import Leaderboard, leaderboard

router = APIRouter(prefix="/models", tags=["models"], route_class=JSONBodyRoute)


@router.get("/{name}/leaderboard", response_model=Leaderboard, responses=errors(404, 503))
async def get_leaderboard(name: str, manager: ManagerDep) -> Leaderboard:
    """The champion and each challenger of the newest version: prequential metrics (cumulative and
    rolling), events learned, since when, and a paired significance test against the champion;
    with delayed labels, the served column: each on the served requests whose labels arrived."""
    require_known(manager, name)
    store = manager.store

    def newest():
        latest = store.latest_version(name)
        return store.meta(name, latest) if latest is not None else None

    try:
        meta = await run_in_threadpool(newest)
    except redis.RedisError as exc:
        raise HTTPException(503, detail=f"checkpoint store unreachable: {exc}") from exc
    if meta is None:
        raise HTTPException(503, detail=f"model '{name}' has no published version yet")
    return leaderboard(meta, manager.specs[name].main_metric)
