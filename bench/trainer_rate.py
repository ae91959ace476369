"""Trainer-rate figures: ``streamlearn train`` reading a pre-published backlog from Kafka,
against the plain River loop on the same events, and against itself without checkpoints.

Against the plain loop, the two take turns (``interleaved``): the trainer learns for half a
second, is paused with SIGSTOP (the whole process group, its fetcher too), and the plain
loop, waiting in its own interpreter, learns up to the event the trainer reached; then the
trainer again. The shared host this runs on moves a single thread's speed by 30-50% from one
second to the next, so two runs taken one after the other (the earlier method) measured the
host as much as the code; turns of half a second put both sides under the same load. Only
turns between 10% and 90% of the events count (start-up, connecting and the first fetch are
left out, and the tail), and a pair's ratio is the one of the summed turns.

Against itself without checkpoints (ARF), two trainers take turns the same way, one
checkpointing every second and one not, for a second each (``trainers_in_turns``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
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
from bench.stats import median

HERE = Path(__file__).resolve().parent
LEARNED = "/metrics?name[]=streamlearn_events_learned_total"
"""The one counter the bench reads: prometheus_client then collects only it, 0.6 ms of the
trainer's CPU a scrape against 1.8 ms for the whole page (the scrape's thread included)."""
SCRAPE_EVERY = 0.5
"""How often the bench asks a trainer, after its turns, whether it has learned the rest of
the backlog: each scrape costs the trainer a thread of its own and a GIL hand-over from the
learning thread (ten whole pages a second took 3-4% of its samples, py-spy)."""
CHECKPOINT_TURN = 1.0
"""Turns of the two ARF trainers of the checkpoint figure: with a checkpoint due every
second of wall time, the one checkpointing starts each turn with one (it was paused for a
turn) and falls due again as the turn ends, so it checkpoints about once a second of its
own learning, as it would alone."""
TURN = 0.5
"""Seconds the trainer learns before the plain loop takes its turn: the host's speed holds
for about a second at a time, and a turn must stay well inside the trainer's 6 s lease."""
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
    """What a stopped trainer's final checkpoint says."""

    accuracy: float | None
    blob_bytes: int
    versions: int


def learned(text: str, model: str) -> float | None:
    """``streamlearn_events_learned_total`` of ``model`` in a Prometheus text page."""
    pattern = rf'^streamlearn_events_learned_total\{{[^}}]*model="{re.escape(model)}"[^}}]*\}} (\S+)$'
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None


def final_checkpoint(deployment: Deployment, child: Child, model: str) -> TrainerRun:
    """What the stopped trainer's last checkpoint says (it holds every event learned)."""
    store = deployment.store()
    version = store.latest_version(model)
    if version is None:
        raise BenchError(f"{child.role} left no checkpoint after SIGTERM:\n{child.tail()}")
    meta = store.meta(model, version)
    return TrainerRun(meta.metrics.get("Accuracy"), meta.blob_bytes, meta.version)


class PlainSteps:
    """The plain loop in a fresh interpreter, learning in steps the bench asks for
    (``bench/plain_loop.py --steps``); values decoded and model built before the first."""

    def __init__(self, backlog: Backlog, pipeline: Pipeline) -> None:
        cmd = [
            sys.executable,
            str(HERE / "plain_loop.py"),
            "--steps",
            "--values",
            str(backlog.values_file),
            "--pipeline",
            orjson.dumps(pipeline.steps).decode(),
        ]
        self.title = pipeline.title
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.events = self._answer()["ready"]

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"plain loop of {self.title} exited with {self.proc.wait()}")
        return orjson.loads(line)

    def advance(self, to: int) -> tuple[int, float]:
        """Learn up to event ``to``: (events learned, seconds the loop took)."""
        self.proc.stdin.write(f"{to}\n")
        self.proc.stdin.flush()
        answer = self._answer()
        return answer["events"], answer["seconds"]

    def finish(self) -> dict[str, float]:
        """Learn the rest, untimed; the accuracies over every event."""
        self.advance(self.events)
        self.proc.stdin.close()
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@dataclass(frozen=True)
class Turns:
    """One pair's turns: the trainer from ``start`` to ``end`` events learned in ``seconds``
    (scrape to scrape), then the plain loop's ``plain_events`` in ``plain_seconds``."""

    start: float
    end: float
    seconds: float
    plain_events: int
    plain_seconds: float


def counted_turns(
    turns: list[Turns], total: int, low: float = 0.1, high: float = 0.9
) -> tuple[list[Turns], int]:
    """(the turns a rate is taken over, how many lie inside): those that start at or past
    ``low`` and end by ``high`` of ``total`` events; a backlog too short for one such turn
    (``--smoke``) counts every turn in which the trainer learned something, and one learned
    in a single batch, whose counter may move between two readings, all turns as one."""
    inside = [t for t in turns if t.start >= low * total and t.end <= high * total and t.end > t.start]
    counted = inside or [t for t in turns if t.end > t.start] or _as_one(turns)
    if not counted:
        raise BenchError(f"no turn of the trainer learned any of {total} events")
    return counted, len(inside)


def _as_one(turns: list[Turns]) -> list[Turns]:
    """The turns summed into one (none if the trainer learned nothing over them)."""
    if not turns or turns[-1].end <= turns[0].start:
        return []
    return [
        Turns(
            turns[0].start,
            turns[-1].end,
            sum(t.seconds for t in turns),
            sum(t.plain_events for t in turns),
            sum(t.plain_seconds for t in turns),
        )
    ]


def turn_rate(turns: list[Turns], total: int) -> float:
    """A trainer's events per second over its ``counted_turns``."""
    return _trainer_rate(counted_turns(turns, total)[0])


def interleaved_rates(turns: list[Turns], total: int) -> tuple[float, float, int]:
    """(trainer rate, plain-loop rate, turns inside the slice) over the ``counted_turns``."""
    counted, inside = counted_turns(turns, total)
    plain = sum(t.plain_events for t in counted) / sum(t.plain_seconds for t in counted)
    return _trainer_rate(counted), plain, inside


def _trainer_rate(counted: list[Turns]) -> float:
    return sum(t.end - t.start for t in counted) / sum(t.seconds for t in counted)


def learned_now(client: httpx.Client, child: Child, model: str) -> tuple[float, float | None]:
    """(time, the trainer's learned counter), the time the middle of the scrape."""
    child.check()
    before = time.perf_counter()
    try:
        count = learned(client.get(f"http://127.0.0.1:{child.port}{LEARNED}").text, model)
    except httpx.HTTPError:
        count = None  # not listening yet
    return (before + time.perf_counter()) / 2, count


def learn_the_rest(client: httpx.Client, child: Child, model: str, total: int, timeout: float) -> None:
    """Wait, scraping every ``SCRAPE_EVERY`` s, until the running trainer has learned all
    ``total`` events (its final checkpoint then holds every one)."""
    deadline = time.monotonic() + timeout
    while (count := learned_now(client, child, model)[1] or 0) < total:
        if time.monotonic() > deadline:
            raise BenchError(f"{child.role} learned {count} of {total} events in {timeout:.0f}s")
        time.sleep(SCRAPE_EVERY)


def first_count(client: httpx.Client, child: Child, model: str, deadline: float) -> float:
    """The trainer's learned counter once its endpoint shows it (polled while it starts)."""
    while (count := learned_now(client, child, model)[1]) is None:
        if time.monotonic() > deadline:
            raise BenchError(f"{child.role} never showed its learned counter:\n{child.tail()}")
        time.sleep(0.02)
    return count


def take_turn(client: httpx.Client, child: Child, model: str, seconds: float) -> Turns:
    """Let the paused trainer (with its fetcher, and any checkpoint writer: the process
    group) learn for ``seconds``, counted between a reading right after it resumes and one
    right before it is paused again."""
    os.killpg(child.pid, signal.SIGCONT)
    start, count = learned_now(client, child, model)
    time.sleep(max(0.0, start + seconds - time.perf_counter()))
    end, reached = learned_now(client, child, model)
    os.killpg(child.pid, signal.SIGSTOP)
    return Turns(count or 0, reached or 0, end - start, 0, 0.0)


def resume(child: Child) -> None:
    """SIGCONT to ``child``'s process group, if it is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGCONT)


@dataclass
class Pair:
    trainer_rate: float
    plain_rate: float
    turns: int
    trainer_accuracy: float | None
    plain_accuracy: float


def interleaved(
    services: Services,
    workdir: Path,
    backlog: Backlog,
    pipeline: Pipeline,
    timeout: float,
    peaks: Peaks,
    challengers: tuple[Pipeline, ...] = (),
) -> Pair:
    """The trainer over the whole backlog taking turns with the plain loop (module docstring).

    With ``challengers`` the trainer learns them beside ``pipeline``, and the baseline's turn
    is every pipeline's plain loop, one after the other, up to the same event."""
    deployment = Deployment(services, workdir / f"{pipeline.key}-{uuid.uuid4().hex[:6]}")
    deployment.write_model(
        pipeline.key,
        backlog.topic,
        pipeline.steps,
        checkpoint=NO_CHECKPOINT,
        **({"challengers": {c.key: c.steps for c in challengers}} if challengers else {}),
    )
    turns: list[Turns] = []
    with contextlib.ExitStack() as stack:
        plains = [PlainSteps(backlog, p) for p in (pipeline, *challengers)]
        for plain in plains:
            stack.callback(plain.close)
        client = stack.enter_context(httpx.Client(timeout=2, headers={"Accept-Encoding": "identity"}))
        with deployment.trainer(pipeline.key) as child:
            deadline = time.monotonic() + timeout
            count = first_count(client, child, pipeline.key, deadline)
            try:
                while count < 0.9 * backlog.events:
                    if time.monotonic() > deadline:
                        raise BenchError(
                            f"{child.role} learned {count} of {backlog.events} in {timeout:.0f}s"
                        )
                    turn = take_turn(client, child, pipeline.key, TURN)
                    steps = [plain.advance(int(turn.end)) for plain in plains]
                    events, seconds = steps[0][0], sum(s for _, s in steps)
                    turns.append(dataclasses.replace(turn, plain_events=events, plain_seconds=seconds))
                    count = turn.end
            finally:
                resume(child)
            learn_the_rest(client, child, pipeline.key, backlog.events, timeout)
            peaks.record(f"trainer, {pipeline.title}", child)
        trained = final_checkpoint(deployment, child, pipeline.key)
        plain_accuracy = plains[0].finish()["scored_accuracy"]
    trainer_rate, plain_rate, counted = interleaved_rates(turns, backlog.events)
    return Pair(trainer_rate, plain_rate, counted, trained.accuracy, plain_accuracy)


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
    """Figure 1: trainer from Kafka / plain River loop, same decoded events, taking turns."""
    pairs = [interleaved(services, workdir, backlog, pipeline, timeout, peaks) for _ in range(repeat)]
    trainer_rates = [p.trainer_rate for p in pairs]
    plain_rates = [p.plain_rate for p in pairs]
    ratios = [p.trainer_rate / p.plain_rate for p in pairs]
    accuracies = [p.trainer_accuracy for p in pairs] + [p.plain_accuracy for p in pairs]
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
            "turns": [p.turns for p in pairs],
            "events": backlog.events,
            # exactly-once over one partition: the trainer's model is the plain loop's
            "same_accuracy": len({round(a or -1, 12) for a in accuracies}) == 1,
            "accuracy": accuracies,
        },
    )


def trainers_in_turns(
    services: Services,
    workdir: Path,
    backlog: Backlog,
    pipeline: Pipeline,
    policies: tuple[dict, dict],
    timeout: float,
    peaks: Peaks,
) -> tuple[list[float], list[TrainerRun]]:
    """Two trainers of ``pipeline``, one a checkpoint policy, over the whole backlog, taking
    turns of ``CHECKPOINT_TURN`` s (the other paused with SIGSTOP, with its fetcher and any
    checkpoint writer it forked): (their rates, their final checkpoints)."""
    deployments = [Deployment(services, workdir / f"{pipeline.key}-{uuid.uuid4().hex[:6]}") for _ in policies]
    for deployment, policy in zip(deployments, policies, strict=True):
        deployment.write_model(pipeline.key, backlog.topic, pipeline.steps, checkpoint=policy)
    turns: list[list[Turns]] = [[], []]
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=2, headers={"Accept-Encoding": "identity"}))
        deadline = time.monotonic() + timeout
        children: list[Child] = []
        counts: list[float] = []
        # One after the other, each paused as soon as its counter shows: started together,
        # the second learned while the bench waited for the first, and on a small backlog
        # (--smoke) could learn all of it before its first turn.
        for deployment in deployments:
            child = stack.enter_context(deployment.trainer(pipeline.key))
            stack.callback(resume, child)  # before it is stopped
            counts.append(first_count(client, child, pipeline.key, deadline))
            os.killpg(child.pid, signal.SIGSTOP)
            children.append(child)
        try:
            side = 0
            while min(counts) < 0.9 * backlog.events:
                if time.monotonic() > deadline:
                    raise BenchError(f"trainers learned {counts} of {backlog.events} in {timeout:.0f}s")
                if counts[side] >= 0.9 * backlog.events:
                    side = 1 - side
                turn = take_turn(client, children[side], pipeline.key, CHECKPOINT_TURN)
                turns[side].append(turn)
                counts[side] = turn.end
                side = 1 - side
        finally:
            for child in children:
                resume(child)
        for child in children:
            learn_the_rest(client, child, pipeline.key, backlog.events, timeout)
            peaks.record(f"trainer, {pipeline.title}", child)
    # stopped: their final checkpoints hold every event (and the pickle at full size)
    runs = [final_checkpoint(d, c, pipeline.key) for d, c in zip(deployments, children, strict=True)]
    return [turn_rate(t, backlog.events) for t in turns], runs


def checkpoint_cost(
    services: Services,
    workdir: Path,
    backlog: Backlog,
    bar: float,
    repeat: int,
    timeout: float,
    peaks: Peaks,
) -> Figure:
    """Figure 2: ARF trainer with a checkpoint every second / with none, taking turns; the
    first turn of a pair alternates between the two."""
    with_rates, without_rates, ratios, blobs, versions = [], [], [], [], []
    for i in range(repeat):
        policies = (EVERY_SECOND, NO_CHECKPOINT) if i % 2 == 0 else (NO_CHECKPOINT, EVERY_SECOND)
        rates, runs = trainers_in_turns(services, workdir, backlog, ARF, policies, timeout, peaks)
        got = {id(policy): (r, run) for policy, r, run in zip(policies, rates, runs, strict=True)}
        (with_rate, with_run), (without_rate, without_run) = got[id(EVERY_SECOND)], got[id(NO_CHECKPOINT)]
        versions.append(with_run.versions)
        blobs += [with_run.blob_bytes, without_run.blob_bytes]
        with_rates.append(with_rate)
        without_rates.append(without_rate)
        ratios.append(with_rate / without_rate)
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
