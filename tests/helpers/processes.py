"""Start the real trainer and API as child processes, the way operators run them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import yaml

from model_store.specs import ModelSpec

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = "test-signing-key"
STREAMLEARN = [sys.executable, "-m", "model_store.cli"]
"""The `streamlearn` command, run from the checkout with the test's Python."""


def wait_until(check: Callable[[], T], timeout: float = 60.0, interval: float = 0.1, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value {last!r}")


async def await_until(check: Callable[[], T], timeout: float = 60.0, what: str = "") -> T:
    """``wait_until`` inside an event loop: the loop's other tasks (requests in flight) run
    while it waits; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last value {last!r}")


def write_spec(directory: Path, **fields: object) -> ModelSpec:
    """A model YAML in ``directory`` (StandardScaler | LogisticRegression unless overridden)."""
    raw = {
        "task": "classification",
        "pipeline": ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}],
        "metrics": ["Accuracy"],
        "rolling_window": 100,
        "checkpoint": {"every_events": 100, "every_seconds": 0.5, "keep": 50},
        **fields,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{raw['name']}.yaml").write_text(yaml.safe_dump(raw))
    return ModelSpec.model_validate(raw)


@dataclass
class Env:
    """Settings of one test's deployment, passed to child processes by environment."""

    kafka: str
    redis_url: str
    models_dir: Path
    key_prefix: str
    logs: Path
    children: list[subprocess.Popen] = field(default_factory=list)

    def environ(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "STREAMLEARN_REDIS_URL": self.redis_url,
            "STREAMLEARN_MODELS_DIR": str(self.models_dir),
            "STREAMLEARN_KEY_PREFIX": self.key_prefix,
            "STREAMLEARN_POLL_INTERVAL_SECONDS": "0.5",
            "STREAMLEARN_SIGNING_KEY": SIGNING_KEY,
            "STREAMLEARN_METRICS_PORT": "0",  # trainers of a test ask for a free port when they need one
            "STREAMLEARN_METRICS_HOST": "127.0.0.1",
            **extra,
        }

    def start(self, name: str, *args: str, **extra_env: str) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [*STREAMLEARN, *args],
            env=self.environ(**extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.children.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.children:
            stop(proc, timeout=10)

    def start_trainer(self, model: str, **extra_env: str) -> subprocess.Popen:
        return self.start(f"train-{model}", "train", "--model", model, **extra_env)

    def start_api(self, port: int, **extra_env: str) -> subprocess.Popen:
        proc = self.start(f"api-{port}", "serve", "--port", str(port), **extra_env)
        wait_until(lambda: _healthy(port, proc), timeout=30, what=f"API on port {port}")
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text() if path.exists() else ""


def cli(env: Env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """One `streamlearn` command against ``env``, run to completion, its output captured as text."""
    return subprocess.run(
        [*STREAMLEARN, *args], env=env.environ(), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def unread(port: int) -> int:
    """Bytes that clients sent a server on 127.0.0.1:``port`` and it has not read yet (0 once it has
    read every request on its open connections)."""
    waiting = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if state == "01" and int(local.split(":")[1], 16) == port:  # 01: ESTABLISHED
            waiting += int(queues.split(":")[1], 16)  # tx_queue:rx_queue
    return waiting


def _healthy(port: int, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"API exited with {proc.returncode}")
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
