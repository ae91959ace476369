from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_store.store import CheckpointStore
from stream.local_services import KafkaServer, RedisServer, free_port
from tests.helpers.processes import Env


@pytest.fixture
def env(kafka: KafkaServer, redis_server: RedisServer, prefix: str, tmp_path) -> Iterator[Env]:
    """One isolated deployment: own key prefix, models dir and logs; children stopped after."""
    e = Env(kafka.bootstrap, redis_server.url, tmp_path / "models", prefix, tmp_path / "logs")
    yield e
    e.stop_all()


@pytest.fixture
def store(redis_server: RedisServer, prefix: str) -> CheckpointStore:
    return CheckpointStore.from_url(redis_server.url, prefix)


@pytest.fixture
def port() -> int:
    return free_port()
