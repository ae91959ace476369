"""``streamlearn train --all``: every configured model's trainer in one process.

One container then trains whatever ``configs/models/`` holds, so adding a model
stays configuration only. Each trainer runs in its own thread with its own Kafka
clients and Redis connection; they share one stop flag. When one trainer ends on
its own (a crash), the others are stopped too, each writing its final
checkpoint, and the process exits non-zero so a supervisor (compose's restart
policy) restarts the set: every trainer resumes from its own checkpoint, so a
restart never learns an event twice.

A model whose newest checkpoint was written by another Python or River is not a
crash: its trainer says so once (log, ``streamlearn_checkpoint_incompatible``) and
ends, and the others keep training; the process lives on without that model until
it is restarted (after ``streamlearn rebuild NAME``, or on the image that wrote
it). Only when every model is refused does the process exit, with
``EXIT_INCOMPATIBLE`` (78), at once.

The threads share one core (the GIL); for the throughput bars run one
``streamlearn train --model NAME`` process per model instead.

Checkpoints are still written by forked children here (stream/forked_child.py): a
child of a multi-threaded process inherits every lock as it was at the fork, so it
must use nothing another thread may hold. It only reads its own trainer's state
(forked by that trainer's thread between two of its events), which no other thread
touches, and writes through that trainer's own Redis connection pool
(``CheckpointStore.with_own_pool``), never the store the threads share; it does not
log, print or touch Kafka. So forking is as safe here as in a one-model process, and
it moves the pickling off the shared core.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from model_store.settings import Settings
from model_store.snapshot import RuntimeMismatch
from model_store.specs import ModelSpec, SpecError
from model_store.store import CheckpointStore
from stream.pipeline import validate_spec
from stream.telemetry import serve_metrics
from stream.trainer import EXIT_INCOMPATIBLE, Trainer, freeze_start_up_objects

log = logging.getLogger(__name__)


class Worker(threading.Thread):
    """Runs ``work(stop)`` on a thread and remembers the exception it ended with, if any;
    a RuntimeMismatch (the trainer refused a checkpoint and said why) apart, as ``refused``."""

    def __init__(self, name: str, work: Callable[[threading.Event], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.work = work
        self.stop_flag = stop
        self.error: BaseException | None = None
        self.refused: RuntimeMismatch | None = None

    def run(self) -> None:
        try:
            self.work(self.stop_flag)
        except RuntimeMismatch as exc:  # logged by the trainer without a traceback: not a crash
            self.refused = exc
        except BaseException as exc:  # recorded and reported by supervise()
            self.error = exc
            log.exception("%s failed", self.name)


def supervise(
    workers: Sequence[Worker],
    stop: threading.Event,
    heartbeat: Path | None = None,
    interval: float = 5.0,
    join_timeout: float = 60.0,
) -> int:
    """Start the workers and wait for ``stop``; 0 when all ended cleanly after it, else 1.

    A worker that refused its model (``Worker.refused``) ends without stopping the
    others and counts as clean; when every worker refused, this returns
    EXIT_INCOMPATIBLE at once. While every other worker is alive, ``heartbeat`` (if
    given) is touched every ``interval`` seconds, so a container healthcheck can tell
    a live set from a stuck or dying one by the file's age. It is removed on the way out.
    """
    for worker in workers:
        worker.start()
    ended_early: list[str] = []
    try:
        while not stop.is_set():
            if all(w.refused is not None for w in workers):
                log.error("every model was refused (another Python or River wrote them); nothing to train")
                stop.set()
                break
            finished = [w.name for w in workers if not w.is_alive() and w.refused is None]
            if finished and not stop.is_set():
                ended_early = finished
                log.error("%s ended on its own; stopping the other trainers", ", ".join(finished))
                stop.set()
                break
            if heartbeat is not None:
                heartbeat.touch()
            stop.wait(interval)
        for worker in workers:
            worker.join(join_timeout)
    finally:
        if heartbeat is not None:
            heartbeat.unlink(missing_ok=True)
    stuck = [w.name for w in workers if w.is_alive()]
    if stuck:
        log.error("%s did not stop within %.0fs", ", ".join(stuck), join_timeout)
    failed = any(w.error is not None for w in workers)
    if ended_early or stuck or failed:
        return 1
    return EXIT_INCOMPATIBLE if workers and all(w.refused is not None for w in workers) else 0


def _train(trainer: Trainer, stop: threading.Event) -> None:
    trainer.run(stop)


class MergedRegistries(Collector):
    """One /metrics for every trainer of the process: families of the same name are merged
    (their samples differ by the ``model`` label), as Prometheus expects one family per name."""

    def __init__(self, registries: list[CollectorRegistry]) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for registry in self.registries:
            for family in registry.collect():
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        yield from merged.values()


def run_all(specs: Mapping[str, ModelSpec], settings: Settings, heartbeat: Path | None = None) -> int:
    """Entry point of ``streamlearn train --all``: SIGINT/SIGTERM only set the stop flag."""
    if not specs:
        raise SpecError(f"no model YAMLs in {settings.models_dir}: nothing to train")
    for spec in specs.values():
        validate_spec(spec)  # a bad pipeline stops start-up with its file's message, before any thread
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    store = CheckpointStore.from_settings(settings)
    trainers = {name: Trainer(spec, settings, store) for name, spec in specs.items()}
    workers = [Worker(f"trainer {name}", partial(_train, t), stop) for name, t in trainers.items()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MergedRegistries([t.telemetry.registry for t in trainers.values()]))
    server = serve_metrics(registry, settings.metrics_host, settings.metrics_port)
    freeze_start_up_objects()
    log.info("training %d models in one process: %s", len(workers), ", ".join(specs))
    try:
        return supervise(workers, stop, heartbeat)
    finally:
        if server is not None:
            server.shutdown()
