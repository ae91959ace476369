"""``streamlearn train --all``: this process's share of the models, each in a worker process.

Any number of ``train --all`` processes (one machine or many) share the configured
models. Each is a member of the fleet, counted by a heartbeat in Redis
(model_store/leases.py ``Members``), and owns at most ceil(M / N) of the M models,
N the live members. A model is owned through its lease, as with ``train --model``:
this supervisor starts one worker process (``streamlearn train --model NAME``) per
model it takes, and the worker holds the lease, learns and checkpoints.

Every ``POLL`` seconds the supervisor:

- restarts a worker that crashed, after a backoff (1, 2, 4 ... 30 s; counted), and
  never touches the other workers: one model's crash stops no other;
- gives a model up when it owns more than its share (a member joined): SIGTERM to the
  worker, which writes its final checkpoint and releases the lease, so the move falls
  on a checkpoint boundary, as Kafka Streams moves a task; the model then stays out
  of its reach for a few polls so another member takes it;
- stops a worker that lost the race for a lease (it would only be a standby);
- starts workers for free models (no lease) while under its share.

A worker whose checkpoint needs another Python or River (exit status 78) is not
restarted; when every model of the process is refused that way, it exits 78. A
SIGKILLed supervisor takes its workers along (PR_SET_PDEATHSIG: SIGTERM, so they
still checkpoint and release), and its membership expires within the lease TTL.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from model_store.helper_process import death_signal_setter
from model_store.leases import Members, new_owner_id
from model_store.snapshot import running_runtime
from model_store.specs import ModelSpec, SpecError
from model_store.store import CheckpointStore
from stream.backoff import Backoff
from stream.local_services import free_port
from stream.pipeline import validate_spec
from stream.settings import TrainerSettings
from stream.telemetry import serve_metrics
from stream.trainer import EXIT_INCOMPATIBLE

log = logging.getLogger(__name__)

POLL = 0.5
"""Seconds between two looks at the fleet."""
COOLDOWN = 5.0
"""Seconds a model given up stays out of this member's reach, so another member takes it."""
JOIN_GRACE = 1.5
"""Seconds a new member only counts the others before taking models, so members started
together share from the start instead of one taking everything and handing most over."""
LOSER_GRACE = 5.0
"""Seconds a new worker has to win its model's lease before it is stopped as a mere standby."""


@dataclass
class WorkerProcess:
    """One model's worker: ``streamlearn train --model NAME`` as a child of the supervisor."""

    model: str
    proc: subprocess.Popen
    metrics_port: int
    started: float
    stopping: bool = False


@dataclass
class ModelSlot:
    """What the supervisor knows of one configured model."""

    worker: WorkerProcess | None = None
    restarts: int = 0
    retry_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(first=1.0, longest=30.0))  # between restarts
    cooldown_until: float = 0.0
    refused: bool = False  # its checkpoint needs another runtime (exit 78): not restarted
    crashes: list[float] = field(default_factory=list)


class Fleet:
    """This process's membership and workers; ``step`` is one look at the fleet."""

    def __init__(
        self,
        specs: Mapping[str, ModelSpec],
        settings: TrainerSettings,
        store: CheckpointStore,
        spawn: Callable[[str, int], subprocess.Popen] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.specs, self.settings, self.store, self.clock = specs, settings, store, clock
        self.member = new_owner_id()
        self.members = Members(store.client, store.prefix)
        self.slots = {name: ModelSlot() for name in sorted(specs)}
        self.spawn = spawn or self._spawn
        self.live_members = 1
        self.joined = clock()
        own = self.own_registry = CollectorRegistry()
        self._restarts = Counter(
            "streamlearn_trainer_restarts", "Worker restarts after a crash", ["model"], registry=own
        )
        self._members = Gauge(
            "streamlearn_fleet_members", "Live train --all processes sharing the models", registry=own
        )
        self._share = Gauge(
            "streamlearn_fleet_share", "Models this train --all process may own: ceil(M / N)", registry=own
        )
        # A refused worker has exited; its model's refusal stays visible here.
        self._incompatible = Gauge(
            "streamlearn_checkpoint_incompatible",
            "1 while the newest checkpoint was written by another Python or River than this trainer runs",
            ["model", "checkpoint_python", "checkpoint_river", "running_python", "running_river"],
            registry=own,
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FleetMetrics(self))

    # -- one look ------------------------------------------------------------------

    def step(self) -> None:
        now = self.clock()
        try:
            self.live_members = len(self.members.beat(self.member, self.settings.trainer_lease_seconds))
        except redis.RedisError as exc:
            log.warning("fleet: Redis not reachable (%s); keeping the models this process has", exc)
            return
        share = math.ceil(len(self.slots) / max(self.live_members, 1))
        self._members.set(self.live_members)
        self._share.set(share)
        if now - self.joined < JOIN_GRACE:
            return
        owners = self._owners()
        for name, slot in self.slots.items():
            self._reap(name, slot, now)
        owned = [
            n
            for n, s in self.slots.items()
            if s.worker and not s.worker.stopping and owners.get(n) == s.worker.proc.pid
        ]
        for name, slot in self.slots.items():
            w = slot.worker
            if (
                w
                and not w.stopping
                and owners.get(name) not in (None, w.proc.pid)
                and now - w.started > LOSER_GRACE
            ):
                log.info("fleet: %s is owned by another member; stopping this standby", name)
                self._stop(slot)
        running = [n for n, s in self.slots.items() if s.worker and not s.worker.stopping]
        for name in reversed(owned[share:]):  # over the share: give the newest-taken up
            log.info("fleet: %d members, share %d: handing %s over", self.live_members, share, name)
            self._stop(self.slots[name], cooldown=now + COOLDOWN)
            running.remove(name)
        for name in self._preference():
            slot = self.slots[name]
            if len(running) >= share:
                break
            if slot.worker or slot.refused or now < slot.retry_at or now < slot.cooldown_until:
                continue
            if owners.get(name) is not None:
                continue  # another member owns it
            self._start(name, slot, now)
            running.append(name)

    def _preference(self) -> list[str]:
        """The models in an order of this member's own (a rotation by its id), so members
        looking for free models at the same moment mostly reach for different ones."""
        names = list(self.slots)
        start = zlib.crc32(self.member.encode()) % len(names) if names else 0
        return names[start:] + names[:start]

    def _owners(self) -> dict[str, int]:
        """Model -> pid of the process holding its lease (models nobody holds are absent)."""
        owners = {}
        for name in self.slots:
            holder = self.store.owner(name)
            if holder is not None:
                owners[name] = holder.pid
        return owners

    def _reap(self, name: str, slot: ModelSlot, now: float) -> None:
        w = slot.worker
        if w is None or w.proc.poll() is None:
            return
        slot.worker = None
        code = w.proc.returncode
        if w.stopping:
            return
        if code == EXIT_INCOMPATIBLE:
            slot.refused = True
            log.error("fleet: %s refused its checkpoint (another Python or River); not restarted", name)
            self._show_refusal(name)
            return
        slot.restarts += 1
        delay = slot.backoff.next()
        slot.retry_at = now + delay
        self._restarts.labels(name).inc()
        log.error(
            "fleet: the worker of %s exited with %s; restarting it in %.0fs (restart %d)",
            name,
            code,
            delay,
            slot.restarts,
        )

    def _show_refusal(self, name: str) -> None:
        try:
            latest = self.store.latest_version(name)
            written = self.store.meta(name, latest).runtime if latest is not None else None
        except (redis.RedisError, LookupError):
            written = None
        if written is not None:
            self._incompatible.labels(name, *written, *running_runtime()).set(1)

    def _start(self, name: str, slot: ModelSlot, now: float) -> None:
        port = free_port()
        slot.worker = WorkerProcess(name, self.spawn(name, port), port, now)
        log.info("fleet: started the worker of %s (pid %d)", name, slot.worker.proc.pid)

    def _stop(self, slot: ModelSlot, cooldown: float | None = None) -> None:
        if slot.worker is not None and slot.worker.proc.poll() is None:
            slot.worker.stopping = True
            slot.worker.proc.send_signal(signal.SIGTERM)
        if cooldown is not None:
            slot.cooldown_until = cooldown

    def _spawn(self, name: str, port: int) -> subprocess.Popen:
        env = {
            **os.environ,
            "STREAMLEARN_MODELS_DIR": str(self.settings.models_dir),
            "STREAMLEARN_METRICS_PORT": str(port),
            "STREAMLEARN_METRICS_HOST": "127.0.0.1",
        }
        death = death_signal_setter()
        return subprocess.Popen(
            [sys.executable, "-m", "model_store.cli", "train", "--model", name],
            env=env,
            preexec_fn=(lambda: death(signal.SIGTERM)) if death is not None else None,
        )

    # -- the end -------------------------------------------------------------------

    @property
    def all_refused(self) -> bool:
        return all(s.refused for s in self.slots.values())

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM every worker (final checkpoints, leases released), wait, leave the fleet;
        True when all ended within ``timeout``."""
        for slot in self.slots.values():
            self._stop(slot)
        deadline = self.clock() + timeout
        clean = True
        for slot in self.slots.values():
            if slot.worker is None:
                continue
            try:
                slot.worker.proc.wait(max(deadline - self.clock(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("fleet: the worker of %s did not stop in time; killing it", slot.worker.model)
                slot.worker.proc.kill()
                slot.worker.proc.wait()
                clean = False
            slot.worker = None
        try:
            self.members.leave(self.member)
        except redis.RedisError:
            pass  # it expires with its TTL
        return clean


class FleetMetrics(Collector):
    """The supervisor's metrics and its workers' /metrics as one endpoint per train --all
    process: families of the same name merged (their samples differ by the ``model`` label)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for family in self.fleet.own_registry.collect():
            merged[family.name] = family
        for slot in list(self.fleet.slots.values()):
            if slot.worker is None:
                continue
            try:
                url = f"http://127.0.0.1:{slot.worker.metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                continue  # starting or stopping: its numbers come back with it
            for family in text_string_to_metric_families(text):
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        yield from merged.values()


def run_fleet(
    specs: Mapping[str, ModelSpec], settings: TrainerSettings, heartbeat: Path | None = None
) -> int:
    """Entry point of ``streamlearn train --all``: SIGINT/SIGTERM only set the stop flag."""
    if not specs:
        raise SpecError(f"no model YAMLs in {settings.models_dir}: nothing to train")
    for spec in specs.values():
        validate_spec(spec)  # a bad pipeline stops start-up with its file's message, before any worker
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fleet = Fleet(specs, settings, CheckpointStore.from_settings(settings))
    server = serve_metrics(fleet.registry, settings.metrics_host, settings.metrics_port)
    log.info("train --all: member %s of the fleet for %d models", fleet.member, len(specs))
    try:
        while not stop.is_set():
            fleet.step()
            if fleet.all_refused:
                log.error("every model was refused (another Python or River wrote them); nothing to train")
                return EXIT_INCOMPATIBLE
            if heartbeat is not None:
                heartbeat.touch()
            stop.wait(POLL)
        return 0 if fleet.stop() else 1
    finally:
        fleet.stop(timeout=10)
        if heartbeat is not None:
            heartbeat.unlink(missing_ok=True)
        if server is not None:
            server.shutdown()
