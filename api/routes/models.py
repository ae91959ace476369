"""What each model serves, and its retained versions."""

from __future__ import annotations

import redis
from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from api.deps import ManagerDep, require_known, served_or_error
from api.json_body import JSONBodyRoute
from api.schemas import ModelSummary, Pointers, VersionInfo, errors
from model_store.store import CheckpointStore

router = APIRouter(prefix="/models", tags=["models"], route_class=JSONBodyRoute)


def _summary(manager: ManagerDep, name: str) -> ModelSummary:
    spec = manager.specs[name]
    served = manager.get(name)
    return ModelSummary(
        name=name,
        task=spec.task,
        topic=spec.topic,
        version=served.version if served else None,
        pinned=served.pinned if served else False,
        loaded_at=served.loaded_at if served else None,
        problem=manager.problems.get(name),
    )


@router.get("", response_model=list[ModelSummary])
async def list_models(manager: ManagerDep) -> list[ModelSummary]:
    """Every configured model with the version this replica serves and its pin state."""
    return [_summary(manager, name) for name in sorted(manager.specs)]


def _pointers(store: CheckpointStore, name: str) -> tuple[Pointers, list[dict], dict | None]:
    pointer = store.served_pointer(name)
    reset = store.reset_request(name)
    pointers = Pointers(
        latest=pointer.latest,
        promoted=pointer.promoted,
        pinned=pointer.version if pointer.pinned else None,
        pin_reason=store.pin_reason(name) if pointer.pinned else None,
        reset_pending=reset.version if reset else None,
    )
    trainer = store.trainer_status(name)
    return pointers, store.audit_log(name, 20), trainer.model_dump(mode="json") if trainer else None


@router.get("/{name}", responses=errors(404, 503))
async def get_model(name: str, manager: ManagerDep) -> dict:
    """The served version of one model, its metadata (parent included) and metrics, the store's
    pointers (pin and why, promoted, pending reset), the newest rollbacks, pins and tags, and the
    trainer that owns the model (host, pid, since, fencing epoch, lag; null when none does)."""
    served = served_or_error(manager, name)
    try:
        pointers, history, trainer = await run_in_threadpool(_pointers, manager.store, name)
    except redis.RedisError:
        pointers, history, trainer = None, None, None  # keep answering with what this replica holds
    return {
        **_summary(manager, name).model_dump(),
        "metadata": served.meta.model_dump(mode="json", exclude={"signature"}),
        "pointers": pointers.model_dump() if pointers else None,
        "history": history,
        "trainer": trainer,
    }


@router.get("/{name}/versions", response_model=list[VersionInfo], responses=errors(404, 503))
async def list_versions(name: str, manager: ManagerDep) -> list[VersionInfo]:
    """Retained versions, newest first: parent (lineage), events learned, metrics, creation time,
    and whether each is pinned, promoted, held by the promotion gate, tagged, served here."""
    require_known(manager, name)
    store = manager.store
    try:
        metas, pinned, tags, promoted, held = await run_in_threadpool(
            lambda: (
                store.list_versions(name),
                store.pinned(name),
                store.tags(name),
                store.promoted(name),
                store.held(name),
            )
        )
    except redis.RedisError as exc:
        raise HTTPException(503, detail=f"checkpoint store unreachable: {exc}") from exc
    served = manager.get(name)
    return [
        VersionInfo(
            version=m.version,
            parent=m.parent,
            created_at=m.created_at,
            n_learned=m.n_learned,
            metrics=m.metrics,
            rolling_metrics=m.rolling_metrics,
            pinned=m.version == pinned,
            served=served is not None and served.version == m.version,
            promoted=m.version == promoted,
            held=m.version in held,
            hold_reason=held.get(m.version),
            tag=tags.get(m.version),
            served_metrics=m.served,
        )
        for m in reversed(metas)
    ]
