"""An API replica in-process (FastAPI's TestClient) over a test's store."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore


def api_client(
    store: CheckpointStore,
    prefix: str,
    specs: dict[str, ModelSpec],
    fast_predict: bool = True,
    **settings: object,
) -> TestClient:
    """An API replica in-process over ``store`` (enter it with ``with``): it polls every 0.2 s and
    never reaches Redis through its own URL; ``settings`` adds keys and limits."""
    config = ApiSettings(
        redis_url="redis://unused.invalid:1", key_prefix=prefix, poll_interval_seconds=0.2, **settings
    )
    return TestClient(create_app(config, specs=specs, store=store, fast_predict=fast_predict))
