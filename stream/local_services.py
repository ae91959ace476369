"""Real Kafka and Redis for local runs and tests, started from this project's own files.

Kafka: Apache Kafka 4.x single-node KRaft, jars fetched once from Maven Central
(configs/kafka/pom.xml) into ``.cache/kafka`` (git-ignored). Redis: Debian's
redis-server. No Docker.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from stream.errors import StreamError

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "configs" / "kafka" / "pom.xml"
CACHE = Path(os.environ.get("STREAMLEARN_CACHE_DIR", ROOT / ".cache"))


class ServiceError(StreamError, RuntimeError):
    """A local service could not be installed or started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(
    port: int, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise ServiceError(f"process exited with {proc.returncode} before opening port {port}\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise ServiceError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def launch(args: list[str], log: Path) -> subprocess.Popen:
    """Start a service in a session of its own (a Ctrl-C in the terminal is for the caller to
    pass on), its output appended to ``log``."""
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen | None, kill: bool = False, timeout: float = 15.0) -> None:
    """SIGTERM (SIGKILL with ``kill``) unless it has ended; SIGKILL after ``timeout`` seconds;
    reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kafka_libs(cache: Path = CACHE) -> Path:
    """The broker's jars, fetched with Maven on first use."""
    libs = cache / "kafka" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise ServiceError(
            "Maven (mvn) is needed once to fetch Kafka's jars; install it (apt-get install maven)"
        )
    if libs.exists():
        shutil.rmtree(libs)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"fetching Kafka jars failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    marker.touch()
    return libs


@dataclass
class KafkaServer:
    """A single-node KRaft broker on loopback, tuned to start fast."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap: str = "512m"
    proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data_dir / 'logs'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "message.max.bytes=8388608",
                "",
            ]
        )

    def start(self, timeout: float = 90.0) -> KafkaServer:
        libs = kafka_libs()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(self._properties())
        classpath = f"{libs}/*"
        java = shutil.which("java")
        if java is None:
            raise ServiceError("Java 17+ is needed to run Kafka")
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = kafka_cluster_id()
            fmt = subprocess.run(
                [
                    java,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise ServiceError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        log = self.data_dir / "kafka.log"
        self.proc = launch(
            [
                java,
                f"-Xmx{self.heap}",
                f"-Xms{self.heap}",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(props),
            ],
            log,
        )
        deadline = time.monotonic() + timeout
        wait_for_port(self.port, timeout, self.proc, log)
        self._wait_serving(deadline, log)
        return self

    def _wait_serving(self, deadline: float, log: Path) -> None:
        """An open port is not a ready broker: wait until it answers metadata naming itself,
        so the first client does not race the controller's start-up."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceError(f"Kafka exited with {self.proc.returncode}\n{log.read_text()[-3000:]}")
            with contextlib.suppress(Exception):
                if admin.list_topics(timeout=1).brokers:
                    return
            time.sleep(0.1)
        raise ServiceError(f"Kafka on {self.bootstrap} answers no metadata\n{log.read_text()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        stop_process(self.proc, kill, timeout=30)


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError("redis-server is not installed: run `make deps` (apt-get install redis-server)")
    return binary


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes in URL-safe base64, as Kafka writes them, never
    starting with '-' (the storage tool would read it as an option; Kafka skips those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class RedisServer:
    """redis-server on loopback; append-only persistence on when ``aof`` is set."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    aof: bool = False
    replica_of: int | None = None  # port of a primary on loopback to replicate
    maxmemory: str | None = None  # e.g. "8mb": refuses writes beyond it (noeviction)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        self.proc = launch(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.aof else "no",
                "--protected-mode",
                "yes",
                *(["--replicaof", "127.0.0.1", str(self.replica_of)] if self.replica_of else []),
                *(
                    ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
                    if self.maxmemory
                    else []
                ),
            ],
            log,
        )
        wait_for_port(self.port, timeout, self.proc, log)
        return self

    def stop(self, kill: bool = False) -> None:
        stop_process(self.proc, kill, timeout=15)


@dataclass
class RedisSentinel:
    """One Redis Sentinel on loopback watching a primary (quorum 1, quick failover): enough
    to show clients following a failover; production runs three or more."""

    data_dir: Path
    primary_port: int
    master: str = "mymaster"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> RedisSentinel:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.data_dir}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary_port} 1\n"
            f"sentinel down-after-milliseconds {self.master} 1000\n"
            f"sentinel failover-timeout {self.master} 5000\n"
        )
        log = self.data_dir / "sentinel.log"
        self.proc = launch(
            [redis_server_binary(), str(config), "--sentinel"],
            log,
        )
        wait_for_port(self.port, timeout, self.proc, log)
        return self

    def stop(self) -> None:
        stop_process(self.proc, kill=False, timeout=15)
