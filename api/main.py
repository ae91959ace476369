"""The FastAPI application: built by ``create_app`` from explicit settings, nothing at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.manager import ModelManager
from api.routes import admin, health, models, predict
from api.watcher import Watcher
from model_store.settings import Settings
from model_store.specs import ModelSpec, load_specs
from model_store.store import CheckpointStore

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    specs: dict[str, ModelSpec] | None = None,
    store: CheckpointStore | None = None,
) -> FastAPI:
    """An API replica serving every configured model."""
    specs = specs if specs is not None else load_specs(settings.models_dir)
    store = store or CheckpointStore.from_url(settings.redis_url, settings.key_prefix)
    key = settings.signing_key.get_secret_value().encode() if settings.signing_key else None
    manager = ModelManager(specs, store, key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = Watcher(manager, settings.poll_interval_seconds)
        watcher.start()
        # Come up with whatever the store holds, without waiting forever for a Redis that is away.
        await asyncio.to_thread(watcher.first_pass.wait, 10.0)
        try:
            yield
        finally:
            watcher.stop()
            watcher.join(timeout=5)

    app = FastAPI(
        title="streamlearn",
        description="Real-time predictions from River models that learn from a Kafka stream.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    for router in (health.router, models.router, predict.router, admin.router):
        app.include_router(router)
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    """Run one replica with uvicorn (uvloop + httptools); SIGTERM drains in-flight requests."""
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=20,
    )
