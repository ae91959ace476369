"""Trainer-rate figures: ``streamlearn train`` reading a pre-published backlog from Kafka,
against the plain River loop on the same events, and against itself without checkpoints.

The trainer's rate is the slope of its ``streamlearn_events_learned_total`` counter,
scraped from its Prometheus endpoint about every 500 ms, between 10% and 90% of the
events: interpreter start-up, connecting and the first fetch are not counted, nor is
the tail. Runs of a pair alternate their order from one repeat to the next, and the
figure is the median of the pairs' ratios, so a slow drift of the machine's load
falls on both sides.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.harness import BenchError, Child, Deployment, Peaks, Services
from bench.report import Figure, rate
from bench.stats import learning_rate, median

HERE = Path(__file__).resolve().parent
SCRAPE_EVERY = 0.5
"""Each scrape renders the trainer's whole metrics page in its own thread, 1.8 ms of CPU on an
idle trainer and a GIL hand-over from the learning thread under load: ten a second took
3-4% of the learning thread's samples (py-spy), a probe heavier than what it measures (a
Prometheus server scrapes every 15-30 s). Two a second still give the least-squares slope
seven or more points inside the 10%-90% window of the shortest run."""
NO_CHECKPOINT = {"every_events": 10**9, "every_seconds": 10.0**6, "keep": 3}
EVERY_SECOND = {"every_events": 10**9, "every_seconds": 1.0, "keep": 3}


@dataclass(frozen=True)
class Pipeline:
    key: str
    title: str
    steps: list[Any]


LINEAR = Pipeline(
    "linear",
    "StandardScaler | LogisticRegression",
    ["preprocessing.StandardScaler", "linear_model.LogisticRegression"],
)
HOEFFDING = Pipeline("hoeffding", "HoeffdingTreeClassifier", ["tree.HoeffdingTreeClassifier"])
ARF = Pipeline(
    "arf", "ARFClassifier(n_models=10, seed=1)", [{"forest.ARFClassifier": {"n_models": 10, "seed": 1}}]
)


@dataclass(frozen=True)
class Backlog:
    """A topic holding ``events`` pre-published values, and the same values in a file."""

    topic: str
    events: int
    values_file: Path


@dataclass
class TrainerRun:
    rate: float
    accuracy: float | None
    blob_bytes: int
    versions: int


def learned(text: str, model: str) -> float | None:
    """``streamlearn_events_learned_total`` of ``model`` in a Prometheus text page."""
    pattern = rf'^streamlearn_events_learned_total\{{[^}}]*model="{re.escape(model)}"[^}}]*\}} (\S+)$'
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None


def scrape(child: Child, model: str, total: int, timeout: float) -> list[tuple[float, float]]:
    """(time, events learned) about every ``SCRAPE_EVERY`` s until all ``total`` are learned."""
    url = f"http://127.0.0.1:{child.port}/metrics"
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout
    # uncompressed: gzipping the page ten times a second would cost the measured trainer 1-2%
    with httpx.Client(timeout=2, headers={"Accept-Encoding": "identity"}) as client:
        while True:
            child.check()
            before = time.perf_counter()
            try:
                count = learned(client.get(url).text, model)
            except httpx.HTTPError:
                count = None  # not listening yet
            after = time.perf_counter()
            if count is not None:
                samples.append(((before + after) / 2, count))
                if count >= total:
                    return samples
            if time.monotonic() > deadline:
                raise BenchError(f"{child.role} learned {count} of {total} events in {timeout:.0f}s")
            time.sleep(max(0.0, SCRAPE_EVERY - (time.perf_counter() - before)))


def run_trainer(
    services: Services,
    workdir: Path,
    backlog: Backlog,
    pipeline: Pipeline,
    checkpoint: dict,
    timeout: float,
    peaks: Peaks,
) -> TrainerRun:
    """One trainer over the whole backlog, in a deployment of its own (so from offset 0)."""
    deployment = Deployment(services, workdir / f"{pipeline.key}-{uuid.uuid4().hex[:6]}")
    deployment.write_model(pipeline.key, backlog.topic, pipeline.steps, checkpoint=checkpoint)
    with deployment.trainer(pipeline.key) as child:
        samples = scrape(child, pipeline.key, backlog.events, timeout)
        peaks.record(f"trainer, {pipeline.title}", child)
    # stopped: its final checkpoint holds every event (and the pickle at full size)
    store = deployment.store()
    version = store.latest_version(pipeline.key)
    if version is None:
        raise BenchError(f"{child.role} left no checkpoint after SIGTERM:\n{child.tail()}")
    meta = store.meta(pipeline.key, version)
    return TrainerRun(
        learning_rate(samples, backlog.events),
        meta.metrics.get("Accuracy"),
        meta.blob_bytes,
        meta.version,
    )


def plain_loop(backlog: Backlog, pipeline: Pipeline, timeout: float) -> dict[str, float]:
    """The baseline in a fresh interpreter, like the trainer's."""
    cmd = [
        sys.executable,
        str(HERE / "plain_loop.py"),
        "--values",
        str(backlog.values_file),
        "--pipeline",
        orjson.dumps(pipeline.steps).decode(),
    ]
    done = subprocess.run(cmd, capture_output=True, timeout=timeout)  # killed and reaped on timeout
    if done.returncode != 0:
        raise BenchError(f"plain loop of {pipeline.title} failed:\n{done.stderr.decode()[-2000:]}")
    return orjson.loads(done.stdout)


def against_plain(
    services: Services,
    workdir: Path,
    backlog: Backlog,
    pipeline: Pipeline,
    bar: float,
    repeat: int,
    timeout: float,
    peaks: Peaks,
) -> Figure:
    """Figure 1: trainer from Kafka / plain River loop, same decoded events."""
    trainer_rates, plain_rates, ratios = [], [], []
    accuracies: dict[str, list[float | None]] = {"trainer": [], "plain": []}
    for i in range(repeat):
        order = ("trainer", "plain") if i % 2 == 0 else ("plain", "trainer")
        got: dict[str, float] = {}
        for side in order:
            if side == "trainer":
                run = run_trainer(services, workdir, backlog, pipeline, NO_CHECKPOINT, timeout, peaks)
                got["trainer"] = run.rate
                accuracies["trainer"].append(run.accuracy)
            else:
                plain = plain_loop(backlog, pipeline, timeout)
                got["plain"] = plain["rate"]
                accuracies["plain"].append(plain["scored_accuracy"])
        trainer_rates.append(got["trainer"])
        plain_rates.append(got["plain"])
        ratios.append(got["trainer"] / got["plain"])
    return Figure(
        key=f"trainer_{pipeline.key}",
        title=f"trainer rate from Kafka / plain River loop, {pipeline.title}",
        value=median(ratios),
        measured=rate(median(trainer_rates)),
        baseline=rate(median(plain_rates)),
        bar=(">=", bar),
        runs=ratios,
        extra={
            "trainer_rates": trainer_rates,
            "plain_rates": plain_rates,
            "events": backlog.events,
            # exactly-once over one partition: the trainer's model is the plain loop's
            "same_accuracy": len({round(a or -1, 12) for a in accuracies["trainer"] + accuracies["plain"]})
            == 1,
            "accuracy": accuracies,
        },
    )


def checkpoint_cost(
    services: Services,
    workdir: Path,
    backlog: Backlog,
    bar: float,
    repeat: int,
    timeout: float,
    peaks: Peaks,
) -> Figure:
    """Figure 2: ARF trainer with a checkpoint every second / with none."""
    with_rates, without_rates, ratios, blobs, versions = [], [], [], [], []
    for i in range(repeat):
        order = (EVERY_SECOND, NO_CHECKPOINT) if i % 2 == 0 else (NO_CHECKPOINT, EVERY_SECOND)
        got: dict[str, float] = {}
        for policy in order:
            run = run_trainer(services, workdir, backlog, ARF, policy, timeout, peaks)
            if policy is EVERY_SECOND:
                got["with"] = run.rate
                versions.append(run.versions)
            else:
                got["without"] = run.rate
            blobs.append(run.blob_bytes)
        with_rates.append(got["with"])
        without_rates.append(got["without"])
        ratios.append(got["with"] / got["without"])
    pickles = f"{median(versions):.0f} checkpoints of up to {max(blobs) / 1e6:.1f} MB"
    return Figure(
        key="checkpoint_arf",
        title=f"trainer rate, checkpoint every 1 s / none, {ARF.title}",
        value=median(ratios),
        measured=f"{rate(median(with_rates))}, {pickles}",
        baseline=rate(median(without_rates)),
        bar=(">=", bar),
        runs=ratios,
        extra={
            "with_rates": with_rates,
            "without_rates": without_rates,
            "pickle_bytes": max(blobs),
            "versions_with_checkpoints": versions,
            "events": backlog.events,
        },
    )
