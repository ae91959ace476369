"""Monitors of each model: their state with recent history, and new points as they come."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
import redis
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import FeedDep, ManagerDep, ServingMonitorDep, require_known
from api.feed import Listener, PointFeed
from api.json_body import JSONBodyRoute
from api.monitor_schemas import MonitorsReport
from api.schemas import POINT_EVENTS, errors
from api.serving_monitor import monitors_report

router = APIRouter(tags=["monitors"], route_class=JSONBodyRoute)
KEEPALIVE_SECONDS = 15


@router.get("/models/{name}/monitors", response_model=MonitorsReport, responses=errors(404, 503))
async def get_monitors(
    name: str,
    manager: ManagerDep,
    monitor: ServingMonitorDep,
    history: Annotated[int, Query(ge=0, le=5000, description="Recent metric points to include")] = 300,
) -> MonitorsReport:
    """Concept drift detections, error-rate windows and data drift per feature, with their
    states (ok, warning, alert), the alerts in words, and the recent metric points."""
    require_known(manager, name)
    try:
        points = await run_in_threadpool(manager.store.metric_points, name, history) if history else []
    except redis.RedisError as exc:
        raise HTTPException(503, detail=f"checkpoint store unreachable: {exc}") from exc
    data_drift = await run_in_threadpool(monitor.data_drift, name)
    return monitors_report(name, manager.specs[name].drift.detector, manager.get(name), points, data_drift)


async def _events(
    request: Request, feed: PointFeed, listener: Listener, closing: threading.Event
) -> AsyncIterator[bytes]:
    try:
        yield b"retry: 2000\n\n"
        idle = 0.0
        while not closing.is_set() and not listener.dropped:
            try:
                model, sid, point = await asyncio.wait_for(listener.queue.get(), timeout=1.0)
            except TimeoutError:
                if await request.is_disconnected():
                    break
                idle += 1.0
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield b": keep-alive\n\n"
                continue
            data = orjson.dumps({"model": model, "id": sid, "point": point})
            yield b"id: " + sid.encode() + b"\nevent: point\ndata: " + data + b"\n\n"
    finally:
        feed.unsubscribe(listener)


def _stream(request: Request, feed: PointFeed, model: str | None) -> StreamingResponse:
    listener = feed.subscribe(model)
    return StreamingResponse(
        _events(request, feed, listener, request.app.state.closing),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/models/{name}/monitors/stream",
    response_class=StreamingResponse,
    responses={200: POINT_EVENTS, **errors(404)},
)
async def stream_model_points(
    name: str, request: Request, manager: ManagerDep, feed: FeedDep
) -> StreamingResponse:
    """Server-sent events: each new metric point of the model as `event: point`, with data
    `{"model", "id", "point"}`; the id is the point's Redis stream id."""
    require_known(manager, name)
    return _stream(request, feed, name)


@router.get("/monitors/stream", response_class=StreamingResponse, responses={200: POINT_EVENTS})
async def stream_points(request: Request, feed: FeedDep) -> StreamingResponse:
    """Server-sent events: each new metric point of every model (what the dashboard reads)."""
    return _stream(request, feed, None)
