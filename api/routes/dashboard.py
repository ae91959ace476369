"""The live dashboard: one page and its files, served from this package (no CDN, no build)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from api.json_body import JSONBodyRoute

router = APIRouter(tags=["dashboard"], route_class=JSONBodyRoute)
STATIC = Path(__file__).resolve().parent.parent / "static"
FILES = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "vendor/uPlot.iife.min.js": "text/javascript",
    "vendor/uPlot.min.css": "text/css",
    "vendor/uPlot.LICENSE": "text/plain",
}


@router.get("/dashboard", response_class=FileResponse)
async def dashboard() -> FileResponse:
    """Live charts per model (rolling metric, error rate, events/s, lag, drift markers),
    monitor states and versions; updated by server-sent events, no reload."""
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@router.get("/dashboard/static/{path:path}", include_in_schema=False)
async def static_file(path: str) -> FileResponse:
    if path not in FILES:
        raise HTTPException(404, detail=f"no dashboard file '{path}'")
    return FileResponse(STATIC / path, media_type=FILES[path], headers={"Cache-Control": "no-cache"})
