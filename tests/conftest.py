"""Session-wide real services: one Kafka broker and one redis-server on free ports.

Nothing is mocked or skipped: if a service cannot start, the session fails
with the service's own log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store.store import CheckpointStore
from stream.local_services import KafkaServer, RedisServer, free_port
from tests.helpers.processes import Env


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


LOG_TAIL_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failing test's report carries the tail of every log its child processes wrote
    (trainer, API, fetcher, own brokers), so a failure on CI says why without a rerun."""
    outcome = yield
    report = outcome.get_result()
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if not report.failed or tmp_path is None:
        return
    for path in sorted(Path(tmp_path).rglob("*.log")):
        if path.parent.name == "logs" or path.name in ("kafka.log", "redis.log"):
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            report.sections.append((f"log {path.relative_to(tmp_path)}", "\n".join(lines)))
