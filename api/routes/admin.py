"""Admin: rollback (pin or reset), promotion of a challenger, unpin, tags. Every route needs
the admin key (api/deps.py).

The API is read-only on models: a pin or tag moves a pointer; a reset only
records a request that the trainer applies (stream/reset.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import redis
from fastapi import APIRouter, HTTPException, Path, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, ManagerDep, require_known
from api.json_body import JSONBodyRoute
from api.manager import ModelManager
from api.schemas import (
    MAX_VERSION,
    PromoteBody,
    PromoteResponse,
    RollbackRequest,
    RollbackResponse,
    TagRequest,
    TagResponse,
    UnpinResponse,
)
from model_store.store import VersionNotFound

router = APIRouter(
    prefix="/models",
    tags=["admin"],
    route_class=JSONBodyRoute,
    dependencies=[AdminDep],
    responses={
        401: {"description": "No admin key sent"},
        403: {"description": "Wrong admin key, or admin endpoints disabled (no key configured)"},
        404: {"description": "Unknown model or version"},
        503: {"description": "Checkpoint store unreachable"},
    },
)
T = TypeVar("T")
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number of the model")]


async def _store_call(call: Callable[[], T]) -> T:
    """Run a blocking store call off the event loop; unknown versions are 404 naming those that exist."""
    try:
        return await run_in_threadpool(call)
    except VersionNotFound as exc:
        raise HTTPException(
            404,
            detail={
                "message": str(exc),
                "model": exc.model,
                "version": exc.version,
                "versions": exc.existing,
            },
        ) from exc
    except redis.RedisError as exc:
        raise HTTPException(503, detail=f"checkpoint store unreachable: {exc}") from exc


async def _served_here(manager: ModelManager, name: str) -> int | None:
    """Refresh this replica at once (the others follow through pub/sub) and say what it serves."""
    served = await run_in_threadpool(manager.refresh, name)
    return served.version if served else None


@router.post(
    "/{name}/rollback",
    response_model=RollbackResponse,
    responses={202: {"model": RollbackResponse}, 404: {"description": "Unknown model or version"}},
)
async def rollback(
    name: str, body: RollbackRequest, manager: ManagerDep, response: Response
) -> RollbackResponse:
    """Pin a retained version on every replica, or ask the trainer to reset to it."""
    require_known(manager, name)
    store = manager.store
    if body.mode == "pin":
        await _store_call(lambda: store.pin(name, body.version, reason=body.reason, by="api"))
        return RollbackResponse(
            model=name,
            version=body.version,
            mode="pin",
            detail=f"every replica serves v{body.version} until POST /models/{name}/unpin",
            served_here=await _served_here(manager, name),
        )
    await _store_call(lambda: store.request_reset(name, body.version, reason=body.reason, by="api"))
    response.status_code = status.HTTP_202_ACCEPTED  # the trainer applies it
    served = manager.get(name)
    return RollbackResponse(
        model=name,
        version=body.version,
        mode="reset",
        detail=f"the trainer continues from v{body.version} (keeping its Kafka offsets) and publishes "
        f"a version with parent {body.version} within about a second",
        served_here=served.version if served else None,
    )


@router.post(
    "/{name}/promote",
    response_model=PromoteResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "Unknown model, or no such challenger at the newest version"}},
)
async def promote(name: str, body: PromoteBody, manager: ManagerDep) -> PromoteResponse:
    """Ask the trainer to make a challenger the champion (with its learned state); the former
    champion stays on as a challenger. Replicas serve it from the version the trainer publishes."""
    require_known(manager, name)
    store = manager.store

    def newest_challengers() -> list[str] | None:
        latest = store.latest_version(name)
        return sorted(store.meta(name, latest).challengers) if latest is not None else None

    known = await _store_call(newest_challengers)
    if not known or body.challenger not in known:
        raise HTTPException(
            404, detail=f"model '{name}' has no challenger '{body.challenger}'; challengers: {known or []}"
        )
    await _store_call(lambda: store.request_promotion(name, body.challenger, reason=body.reason, by="api"))
    return PromoteResponse(
        model=name,
        challenger=body.challenger,
        detail=f"the trainer makes {body.challenger} the champion and publishes a version within "
        "about a second",
    )


@router.post("/{name}/unpin", response_model=UnpinResponse)
async def unpin(name: str, manager: ManagerDep) -> UnpinResponse:
    """Let every replica follow the promoted (newest healthy) version again."""
    require_known(manager, name)
    was = await _store_call(lambda: manager.store.unpin(name, by="api"))
    return UnpinResponse(model=name, unpinned=was, served_here=await _served_here(manager, name))


@router.put("/{name}/versions/{version}/tag", response_model=TagResponse)
async def tag(name: str, version: VersionPath, body: TagRequest, manager: ManagerDep) -> TagResponse:
    """Label a retained version; tagged versions survive retention."""
    require_known(manager, name)
    await _store_call(lambda: manager.store.tag(name, version, body.label, by="api"))
    return TagResponse(model=name, version=version, label=body.label)


@router.delete("/{name}/versions/{version}/tag", response_model=TagResponse)
async def untag(name: str, version: VersionPath, manager: ManagerDep) -> TagResponse:
    """Remove a version's label; retention may then drop it."""
    require_known(manager, name)
    await _store_call(lambda: manager.store.untag(name, version, by="api"))
    return TagResponse(model=name, version=version, label=None)
