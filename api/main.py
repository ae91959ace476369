"""The FastAPI application: built by ``create_app`` from explicit settings, nothing at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.types import Receive, Scope, Send

from api.errors import validation_error
from api.fast_predict import FastPredict
from api.feed import PointFeed
from api.limits import BodySizeLimit
from api.manager import ModelManager
from api.prediction_log import PredictionLog
from api.responder import Responder
from api.routes import admin, dashboard, health, leaderboard, metrics, models, monitors, predict
from api.schemas import MAX_BODY_BYTES
from api.serving_monitor import ServingMonitor
from api.settings import ApiSettings
from api.watcher import Watcher
from model_store.specs import ModelSpec, load_specs
from model_store.store import CheckpointStore

log = logging.getLogger(__name__)


class Replica(FastAPI):
    """FastAPI with the predict fast path (api/fast_predict.py) in front of its entry, so
    answered predictions skip the middleware stack as well as the router."""

    fast_predict: FastPredict | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_predict is not None:
            await self.fast_predict(scope, receive, send)  # hands the rest to through_stack
        else:
            await super().__call__(scope, receive, send)

    async def through_stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own entry: its middleware, router and exception handlers."""
        await super().__call__(scope, receive, send)


def create_app(
    settings: ApiSettings,
    specs: dict[str, ModelSpec] | None = None,
    store: CheckpointStore | None = None,
    fast_predict: bool = True,
) -> Replica:
    """An API replica serving every configured model. ``fast_predict=False`` leaves every
    prediction to the FastAPI route, the reference the fast path is tested against."""
    specs = specs if specs is not None else load_specs(settings.models_dir)
    store = store or CheckpointStore.from_settings(settings)
    key = settings.signing_key.get_secret_value().encode() if settings.signing_key else None
    if key is None:
        log.warning("STREAMLEARN_SIGNING_KEY is not set: snapshots are loaded without signature checks")
    manager = ModelManager(specs, store, key)
    feed = PointFeed(store, list(specs))
    closing = threading.Event()  # set on SIGTERM, so open event streams end before the drain

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = Watcher(manager, settings.poll_interval_seconds)
        watcher.start()
        if app.state.prediction_log is not None:
            app.state.prediction_log.start()
        # Come up with whatever the store holds, without waiting forever for a Redis that is away.
        await asyncio.to_thread(watcher.first_pass.wait, 10.0)
        closing.clear()
        feed_task = asyncio.create_task(feed.run(closing))
        try:
            yield
        finally:
            closing.set()
            feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed_task
            watcher.stop()
            watcher.join(timeout=5)
            if app.state.prediction_log is not None:
                app.state.prediction_log.stop()

    app = Replica(
        title="streamlearn",
        description="Real-time predictions from River models that learn from a Kafka stream.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    logging_wanted = any(spec.delayed_labels.log_predictions for spec in specs.values())
    app.state.prediction_log = (
        PredictionLog(settings.kafka_bootstrap_servers, settings.librdkafka_options())
        if logging_wanted
        else None
    )
    app.state.serving_monitor = ServingMonitor(manager)
    app.state.responder = Responder(specs, app.state.prediction_log, app.state.serving_monitor)
    app.state.feed = feed
    app.state.closing = closing
    for router in (health.router, models.router, leaderboard.router, predict.router, admin.router):
        app.include_router(router)
    for router in (monitors.router, metrics.router, dashboard.router):
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    if fast_predict:
        app.fast_predict = FastPredict(
            app.through_stack,
            manager=manager,
            responder=app.state.responder,
            predict_key=settings.predict_key,
            max_bytes=MAX_BODY_BYTES,
        )
    app.add_exception_handler(RequestValidationError, validation_error)
    return app


def serve(settings: ApiSettings, host: str, port: int) -> None:
    """Run one replica with uvicorn (uvloop + httptools, one write per response:
    api/http_protocol.py); SIGTERM drains in-flight requests."""
    import uvicorn

    from api.http_protocol import CoalescingHttpToolsProtocol

    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            app.state.closing.set()  # event streams never end by themselves: end them first
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app.fast_predict or app,  # the fast path hands everything else, lifespan too, to the app
        host=host,
        port=port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,  # httptools, one write per response
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=20,
    )
    Server(config).run()
