"""Services, deployments and child processes for the benchmark.

Each measurement gets its own deployment (Redis key prefix, models directory, logs)
on one shared Kafka and Redis, so runs never see each other's checkpoints. Every
child process is started inside a context manager that stops and reaps it, also
when the measurement fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from model_store.store import CheckpointStore
from stream.local_services import KafkaServer, RedisServer, ServiceError, free_port

T = TypeVar("T")


class BenchError(RuntimeError):
    """A measurement could not be made; the message says which and why."""


_STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress on stderr, with the time since the benchmark started."""
    print(f"[{time.monotonic() - _STARTED:6.0f}s] {message}", file=sys.stderr, flush=True)


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass(frozen=True)
class Services:
    kafka: str
    redis_url: str


@contextlib.contextmanager
def local_services(
    workdir: Path, kafka: str | None = None, redis_url: str | None = None
) -> Iterator[Services]:
    """Kafka and redis-server on free ports (the project's own launchers), unless given."""
    with contextlib.ExitStack() as stack:
        for attempt in (1, 2):
            if kafka is not None:
                break
            broker = KafkaServer(workdir / f"kafka-{attempt}")
            stack.callback(broker.stop)
            try:
                kafka = broker.start().bootstrap
            except ServiceError as exc:  # seen once on a loaded host: the storage format step failed
                if attempt == 2:
                    raise
                say(f"Kafka did not start, trying once more: {str(exc)[:500]}")
                broker.stop()
        if redis_url is None:
            redis_server = RedisServer(workdir / "redis")
            stack.callback(redis_server.stop)
            redis_url = redis_server.start().url
        yield Services(kafka, redis_url)


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM (the trainer then writes its final checkpoint), SIGKILL after ``timeout``; reap."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MiB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def descendants(pid: int) -> list[int]:
    """Live children, grandchildren, ... of ``pid`` (from each process's parent in /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command name may hold spaces and parentheses: fields start after the last ')'
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


@dataclass(frozen=True)
class Memory:
    """Peak memory of a process, and of the processes it started (a fetcher, say), if any."""

    main_mib: float
    children_mib: float = 0.0
    children: int = 0

    def higher(self, other: Memory | None) -> Memory:
        if other is None:
            return self
        return Memory(
            max(self.main_mib, other.main_mib),
            max(self.children_mib, other.children_mib),
            max(self.children, other.children),
        )


class Peaks:
    """The highest VmHWM seen per role (API replica, trainer of a model) over the whole run."""

    def __init__(self) -> None:
        self.by_role: dict[str, Memory] = {}

    def record(self, role: str, child: Child) -> None:
        """Read just before the process is stopped: VmHWM keeps the peak of its whole life."""
        main = peak_rss_mib(child.pid)
        if main is None:
            return
        kids = [m for m in map(peak_rss_mib, descendants(child.pid)) if m is not None]
        self.by_role[role] = Memory(main, sum(kids), len(kids)).higher(self.by_role.get(role))


def streamlearn_command() -> list[str]:
    """The installed ``streamlearn`` entry point of this interpreter's environment."""
    script = Path(sys.executable).with_name("streamlearn")
    return [str(script)] if script.exists() else [sys.executable, "-m", "model_store.cli"]


@dataclass
class Child:
    """A running ``streamlearn`` process and where its output goes."""

    role: str
    proc: subprocess.Popen
    log: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def check(self) -> None:
        """Raise with the tail of its log if it has exited."""
        if self.proc.poll() is not None:
            raise BenchError(f"{self.role} exited with {self.proc.returncode}:\n{self.tail()}")


@dataclass
class Deployment:
    """One isolated streamlearn deployment: key prefix, models dir, secrets, logs."""

    services: Services
    root: Path
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}")
    signing_key: str = field(default_factory=lambda: secrets.token_hex(16))
    admin_key: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def write_model(
        self, name: str, topic: str, pipeline: list[Any], models_dir: Path | None = None, **fields: Any
    ) -> None:
        """A model YAML, in the deployment's models directory unless ``models_dir``; prediction
        logging off (the trainer then reads the events topic only) unless ``fields`` set it."""
        raw = {
            "name": name,
            "topic": topic,
            "task": "classification",
            "pipeline": pipeline,
            "metrics": ["Accuracy"],
            "promotion": {"tolerance": None},  # every version serves: the gate must not hold one
            "delayed_labels": {"log_predictions": False},
            **fields,
        }
        where = models_dir or self.models_dir
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLEARN_")}
        return {
            **env,
            "STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS": self.services.kafka,
            "STREAMLEARN_REDIS_URL": self.services.redis_url,
            "STREAMLEARN_MODELS_DIR": str(self.models_dir),
            "STREAMLEARN_KEY_PREFIX": self.prefix,
            "STREAMLEARN_SIGNING_KEY": self.signing_key,
            "STREAMLEARN_ADMIN_KEY": self.admin_key,
            "STREAMLEARN_METRICS_HOST": "127.0.0.1",
            "STREAMLEARN_METRICS_PORT": "0",
            **extra,
        }

    def store(self) -> CheckpointStore:
        return CheckpointStore.from_url(self.services.redis_url, self.prefix)

    @contextlib.contextmanager
    def process(self, role: str, *args: str, port: int | None = None, **env: str) -> Iterator[Child]:
        """``streamlearn ARGS`` in its own session; stopped and reaped on exit."""
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{role}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [*streamlearn_command(), *args],
                env=self.environ(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                yield Child(role, proc, log_path, port)
            finally:
                stop(proc)

    @contextlib.contextmanager
    def trainer(self, model: str, metrics_port: int | None = None) -> Iterator[Child]:
        """``streamlearn train --model MODEL`` with its Prometheus endpoint on ``metrics_port``."""
        port = metrics_port or free_port()
        with self.process(
            f"train-{model}-{port}", "train", "--model", model, port=port, STREAMLEARN_METRICS_PORT=str(port)
        ) as child:
            yield child

    @contextlib.contextmanager
    def replica(self, name: str, models_dir: Path | None = None) -> Iterator[Child]:
        """``streamlearn serve`` on a free port, yielded once ``/healthz`` answers; with
        ``models_dir`` it reads the model YAMLs there instead of the deployment's own."""
        port = free_port()
        env = {"STREAMLEARN_MODELS_DIR": str(models_dir)} if models_dir else {}
        with self.process(f"serve-{name}-{port}", "serve", "--port", str(port), port=port, **env) as child:
            wait_until(lambda: _healthy(child), 60, f"API replica {name} on port {port}")
            yield child

    @contextlib.contextmanager
    def bare_asgi(self) -> Iterator[Child]:
        """bench/bare_asgi.py (a constant answer under the same uvicorn) on a free port."""
        port = free_port()
        log_path = self.root / "logs" / f"bare-asgi-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).with_name("bare_asgi.py")
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, str(script), "--port", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                child = Child("bare ASGI app", proc, log_path, port)
                wait_until(lambda: _answers(child), 60, f"the bare ASGI app on port {port}")
                yield child
            finally:
                stop(proc)


def _answers(child: Child) -> bool:
    child.check()
    try:
        return httpx.get(f"http://127.0.0.1:{child.port}/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _healthy(child: Child) -> bool:
    child.check()
    try:
        return httpx.get(f"http://127.0.0.1:{child.port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"'{name}' is not installed: run `make deps`")
    return path
