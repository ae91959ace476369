"""Session-wide real services: one Kafka broker and one redis-server on free ports.

Nothing is mocked or skipped: if a service cannot start, the session fails
with the service's own log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.local_services import KafkaServer, RedisServer


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def kafka(services_dir: Path) -> Iterator[KafkaServer]:
    server = KafkaServer(services_dir / "kafka").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(services_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(services_dir / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """A unique key prefix / topic name stem per test."""
    return f"t{uuid.uuid4().hex[:10]}"
