"""The FastAPI application: built by ``create_app`` from explicit settings, nothing at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from api.errors import validation_error
from api.limits import BodySizeLimit
from api.manager import ModelManager
from api.prediction_log import PredictionLog
from api.routes import admin, health, models, predict
from api.schemas import MAX_BODY_BYTES
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
    if key is None:
        log.warning("STREAMLEARN_SIGNING_KEY is not set: snapshots are loaded without signature checks")
    manager = ModelManager(specs, store, key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = Watcher(manager, settings.poll_interval_seconds)
        watcher.start()
        if app.state.prediction_log is not None:
            app.state.prediction_log.start()
        # Come up with whatever the store holds, without waiting forever for a Redis that is away.
        await asyncio.to_thread(watcher.first_pass.wait, 10.0)
        try:
            yield
        finally:
            watcher.stop()
            watcher.join(timeout=5)
            if app.state.prediction_log is not None:
                app.state.prediction_log.stop()

    app = FastAPI(
        title="streamlearn",
        description="Real-time predictions from River models that learn from a Kafka stream.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    logging_wanted = any(spec.delayed_labels.log_predictions for spec in specs.values())
    app.state.prediction_log = (
        PredictionLog(settings.kafka_bootstrap_servers, settings.kafka_client_options())
        if logging_wanted
        else None
    )
    for router in (health.router, models.router, predict.router, admin.router):
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_exception_handler(RequestValidationError, validation_error)
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
