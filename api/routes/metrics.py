"""Prometheus metrics of this replica."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.deps import ServingMonitorDep
from api.json_body import JSONBodyRoute

router = APIRouter(tags=["metrics"], route_class=JSONBodyRoute)


@router.get("/metrics", response_class=Response)
async def metrics(monitor: ServingMonitorDep) -> Response:
    """Prometheus text format: predictions by version, predict latency, served version,
    refused snapshots, data-drift score per feature."""
    body = await run_in_threadpool(generate_latest, monitor.registry)  # drift scores cost milliseconds
    return Response(body, media_type=CONTENT_TYPE_LATEST)
