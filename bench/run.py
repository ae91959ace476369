"""Service benchmark (``make bench``): every performance bar, each as a ratio against a
baseline measured in the same run on the same machine, or as a latency held to its bar.

Starts its own Kafka and redis-server on free ports, runs the real ``streamlearn train``
and ``streamlearn serve`` processes on temporary model YAMLs, repeats each figure and
reports medians; writes the "Service figures" section of docs/benchmarks.md unless
``--smoke`` (every figure at tiny sizes, seconds each, nothing written).

Run: .venv/bin/python bench/run.py [--repeat 5] [--events 60000] [--smoke] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.events import an_instance, create_topic, publish, raw_values, write_values  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchError,
    Child,
    Deployment,
    Peaks,
    Services,
    local_services,
    require_tool,
    say,
    wait_until,
)
from bench.latency import produce_to_servable, rollback_to_every_replica  # noqa: E402
from bench.report import Figure  # noqa: E402
from bench.serving import CONNECTIONS, Side, predict_figures  # noqa: E402
from bench.trainer_rate import (  # noqa: E402
    CHECKPOINT_TURN,
    HOEFFDING,
    LINEAR,
    TURN,
    Backlog,
    against_plain,
    checkpoint_cost,
)
from stream.local_services import ServiceError  # noqa: E402

GROUPS = ("trainer", "checkpoint", "serving")


@dataclasses.dataclass(frozen=True)
class Sizes:
    repeat: int = 5  # the shared VM moves single runs by up to 10%: 5 pairs steady the medians
    events: int = 300_000  # backlog of the linear and Hoeffding tree trainers: 10-25 turns a pair
    arf_events: int = 20_000  # ARF learns 0.6-2 k ev/s on 2 cores: 10-30 s, 10+ checkpoints
    wrk_seconds: float = 2.0  # short runs (whole seconds, for wrk): the host moves within seconds
    wrk_rounds: int = 25  # /predict: every server once a round, the order rotated
    warmup_seconds: float = 2.0
    markers: int = 100
    background_rate: float = 500.0
    rollbacks: int = 50
    timeout: float = 600.0  # for one trainer run


SMOKE = Sizes(
    repeat=1,
    events=3_000,
    arf_events=400,
    wrk_seconds=1.0,
    wrk_rounds=1,
    warmup_seconds=0.0,
    markers=5,
    background_rate=200.0,
    rollbacks=4,
    timeout=120.0,
)


def backlog(services: Services, workdir: Path, name: str, events: int) -> Backlog:
    """``events`` Phishing values on a fresh topic and in a file, for trainer and baseline."""
    topic = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    values = raw_values(events)
    say(f"publishing {events:,} events to {topic}")
    publish(services.kafka, topic, values)
    return Backlog(topic, events, write_values(workdir / f"{topic}.values", values))


def trainer_figures(services: Services, workdir: Path, sizes: Sizes, peaks: Peaks) -> list[Figure]:
    events = backlog(services, workdir, "trainer", sizes.events)
    figures = []
    for pipeline, bar in ((LINEAR, 0.85), (HOEFFDING, 0.92)):  # SPEC section 6
        say(f"trainer from Kafka vs plain River loop, {pipeline.title} ({sizes.repeat} pairs)")
        figures.append(
            against_plain(services, workdir, events, pipeline, bar, sizes.repeat, sizes.timeout, peaks)
        )
    return figures


def checkpoint_figures(services: Services, workdir: Path, sizes: Sizes, peaks: Peaks) -> list[Figure]:
    events = backlog(services, workdir, "arf", sizes.arf_events)
    say(f"ARF trainer with a checkpoint every second vs none ({sizes.repeat} pairs)")
    return [checkpoint_cost(services, workdir, events, 0.95, sizes.repeat, sizes.timeout, peaks)]


def serving_figures(services: Services, workdir: Path, sizes: Sizes, peaks: Peaks) -> list[Figure]:
    """One deployment for figures 3-5: a trainer on live events with replica A (produce ->
    servable), then, the trainer stopped so the machine is quiet and versions stay put,
    wrk against A (/predict), then a second replica B (rollback)."""
    require_tool("wrk")
    deployment = Deployment(services, workdir / "serving")
    topic, model = f"bench-live-{uuid.uuid4().hex[:6]}", "live"
    create_topic(services.kafka, topic)
    checkpoint = {"every_events": 10**9, "every_seconds": 1.0, "keep": 50}
    deployment.write_model(model, topic, LINEAR.steps, checkpoint=checkpoint)
    shipped = deployment.root / "models-shipped-defaults"  # prediction log on, as shipped
    deployment.write_model(model, topic, LINEAR.steps, shipped, checkpoint=checkpoint, delayed_labels={})
    create_topic(services.kafka, f"{topic}.predictions")
    body = an_instance()
    store = deployment.store()
    figures = []
    with deployment.replica("a") as a:
        with deployment.trainer(model) as trainer:
            say(f"produce -> servable: {sizes.markers} markers x {sizes.repeat}")
            figures.append(
                produce_to_servable(
                    a, model, topic, services.kafka, sizes.markers, sizes.background_rate, sizes.repeat
                )
            )
            wait_until(
                lambda: (store.latest_version(model) or 0) >= 3, 30, "three versions to roll back among"
            )
            peaks.record(f"trainer, {LINEAR.title}, live events, checkpoint every 1 s", trainer)
        latest = store.latest_version(model)
        wait_until(lambda: _serves(a, model, latest), 30, f"replica a to serve the final v{latest}")
        with deployment.replica("logged", shipped) as logged, deployment.bare_asgi() as bare:
            wait_until(lambda: _serves(logged, model, latest), 30, f"the logging replica to serve v{latest}")
            say(
                "/predict (log on, log off) vs a bare ASGI app and /healthz with wrk, "
                f"{sizes.wrk_seconds:g} s each x {sizes.wrk_rounds}"
            )
            predict = f"/models/{model}/predict"
            sides = [
                Side("bare", "bare ASGI app, constant body", f"http://127.0.0.1:{bare.port}/", True, bare),
                Side("logged", "/predict, log on", f"http://127.0.0.1:{logged.port}{predict}", True, logged),
                Side("unlogged", "/predict, log off", f"http://127.0.0.1:{a.port}{predict}", True, a),
                Side("healthz", "GET /healthz", f"http://127.0.0.1:{a.port}/healthz", False, a),
            ]
            figures += predict_figures(
                sides, body, workdir, sizes.wrk_seconds, sizes.wrk_rounds, sizes.warmup_seconds
            )
            counts = _check_logged(logged)
            for figure in figures:
                if figure.key == "predict_rps":
                    figure.extra["prediction_log"] = counts
                    figure.measured += f"; {counts['sent']:,} records logged, {counts['dropped']:,} dropped"
            peaks.record("API replica, prediction log on", logged)
        with deployment.replica("b") as b:
            wait_until(lambda: _serves(b, model, latest), 30, f"replica b to serve v{latest}")
            say(f"rollback -> both replicas: {sizes.rollbacks} rollbacks x {sizes.repeat}")
            figures.append(
                rollback_to_every_replica(
                    [a, b], model, deployment.admin_key, body, sizes.rollbacks, sizes.repeat
                )
            )
            peaks.record("API replica", b)
        peaks.record("API replica", a)
    return figures


def _serves(replica: Child, model: str, version: int | None) -> bool:
    try:
        answer = httpx.get(f"http://127.0.0.1:{replica.port}/models/{model}", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and answer.json()["version"] == version


def _check_logged(replica: Child) -> dict[str, int]:
    """The logging replica's counts; it must have logged to Kafka, or the figure would not
    measure what it says."""
    log = httpx.get(f"http://127.0.0.1:{replica.port}/readyz", timeout=5).json()["prediction_log"]
    if not log["sent"]:
        raise BenchError(f"the logging replica sent no prediction to Kafka: {log}")
    if log["dropped"]:
        say(f"the logging replica dropped {log['dropped']:,} of {log['sent'] + log['dropped']:,} records")
    return {"sent": log["sent"], "dropped": log["dropped"]}


def memory_figures(peaks: Peaks) -> list[Figure]:
    """Figure 6, no bar: the process's own VmHWM; processes it started are shown beside it."""
    return [
        Figure(
            key="peak_memory_" + re.sub(r"\W+", "_", role.lower()).strip("_"),
            title=f"peak memory (VmHWM), {role}",
            value=memory.main_mib,
            unit="MiB",
            measured=f"+ {memory.children_mib:.0f} MiB in {memory.children} child processes"
            if memory.children
            else "",
            extra={"children_mib": memory.children_mib, "children": memory.children},
        )
        for role, memory in sorted(peaks.by_role.items())
    ]


def notes(sizes: Sizes) -> list[str]:
    return [
        f"Trainer rates: `streamlearn train` reads a pre-published backlog of {sizes.events:,} Phishing "
        "events (River's bundled dataset, cycled) from a one-partition topic, with metrics [Accuracy], "
        "its default drift and error-rate monitors, delayed labels off (it reads the events topic only) "
        "and no checkpoint until it stops. Trainer and baseline take turns: the trainer learns for "
        f"{TURN:g} s (its learned counter, `streamlearn_events_learned_total`, scraped at both ends), "
        "is paused with SIGSTOP with its fetcher, and the baseline, the plain loop `predict_one`, "
        "`Accuracy.update`, `learn_one` waiting in a fresh interpreter over the same message values "
        "decoded up front with orjson, learns up to the event the trainer reached (the loop alone "
        "timed); then the trainer again. Only turns between 10% and 90% of the backlog count, and a "
        "pair's ratio is its summed turns' (this host moves one thread's speed by 30-50% from one "
        "second to the next, which runs taken one after the other measured as much as the code). "
        "The ratio is the median of the pairs' ratios (so it need not equal measured / baseline).",
        "Checkpoint cost: two trainers of `forest.ARFClassifier` (10 trees, seed 1) over "
        f"{sizes.arf_events:,} "
        "events, one with `checkpoint.every_seconds: 1` and one with none, take turns of "
        f"{CHECKPOINT_TURN:g} s the same way (the other paused with its fetcher and any checkpoint "
        "writer it forked; which goes first alternates between pairs); each one's rate is over its "
        "own turns between 10% and 90% of the events; the pickle size is the largest final "
        "checkpoint's.",
        f"/predict: wrk `-t2 -c{CONNECTIONS} -d{sizes.wrk_seconds:g}s --latency` on the same machine, "
        f"one Phishing instance per POST, against four servers in turn, {sizes.wrk_rounds} rounds (the "
        "order rotated each round; short runs, as this host's speed moves within seconds): "
        "the bare ASGI app of bench/bare_asgi.py (reads the body, answers a constant of the answer's "
        "size; uvicorn with uvloop, httptools, no access log and one write per response "
        "(api/http_protocol.py), as `streamlearn serve` runs), a "
        "`streamlearn serve` replica with the shipped defaults (StandardScaler | LogisticRegression, "
        "no predict key, prediction log on, to the run's Kafka), one with the log off, and `GET "
        "/healthz` of the latter (FastAPI's router). A ratio is the median of the rounds' ratios; "
        "CPU per request is the server process's user + system time over the run divided by the "
        "requests wrk counted (its child processes, the log's producer, apart); the counts of "
        "records logged and dropped are the logging replica's `/readyz` after all its runs.",
        f"Produce -> servable: a trainer checkpointing every second while {sizes.background_rate:g} "
        f"events/s flow in; {sizes.markers} marker events per repeat at random gaps of 0.1-0.5 s; "
        "latency from the producer's send to the first `GET /models/{name}` (polled every 10 ms) whose "
        "served offsets include the marker's offset. Promotion gate off (tolerance null).",
        f"Rollback: {sizes.rollbacks} pins per repeat through `POST /models/{{name}}/rollback` (alternating "
        "the replica called and the target version), from the request until both replicas answer "
        "`POST /predict` (polled every 5 ms) with the target; unpinned and settled between rollbacks.",
        "Peak memory: VmHWM of each process just before it is stopped, the highest over the runs of "
        "its role; the API replica's includes the wrk runs and the rollbacks. Processes it started "
        "(if any are alive then) are listed beside it, not added.",
    ]


def measure_all(
    sizes: Sizes, groups: tuple[str, ...], kafka: str | None, redis_url: str | None
) -> list[Figure]:
    """Every figure of the chosen groups, with services and files that live only for this run."""
    figures: list[Figure] = []
    peaks = Peaks()
    with tempfile.TemporaryDirectory(prefix="streamlearn-bench-", ignore_cleanup_errors=True) as tmp:
        workdir = Path(tmp)
        say("starting Kafka and Redis" if not kafka else "using the given services")
        with local_services(workdir, kafka, redis_url) as services:
            for group, measure in (
                ("trainer", trainer_figures),
                ("checkpoint", checkpoint_figures),
                ("serving", serving_figures),
            ):
                if group in groups:
                    figures += measure(services, workdir, sizes, peaks)
    return figures + memory_figures(peaks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, help=f"runs per figure, medians reported (default {Sizes.repeat})"
    )
    parser.add_argument("--events", type=int, help=f"trainer backlog (default {Sizes.events:,})")
    parser.add_argument("--arf-events", type=int, help=f"ARF backlog (default {Sizes.arf_events:,})")
    parser.add_argument("--wrk-seconds", type=float, help=f"each wrk run (default {Sizes.wrk_seconds:g})")
    parser.add_argument("--wrk-rounds", type=int, help=f"/predict rounds (default {Sizes.wrk_rounds})")
    parser.add_argument("--markers", type=int, help=f"produce -> servable markers (default {Sizes.markers})")
    parser.add_argument("--rollbacks", type=int, help=f"rollbacks per repeat (default {Sizes.rollbacks})")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat, no doc written")
    parser.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups (no doc written)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--kafka", help="use this Kafka bootstrap instead of starting one")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    args = parser.parse_args()

    sizes = SMOKE if args.smoke else Sizes()
    overrides = {
        k: getattr(args, k)
        for k in ("repeat", "events", "arf_events", "wrk_seconds", "wrk_rounds", "markers", "rollbacks")
        if getattr(args, k) is not None
    }
    sizes = dataclasses.replace(sizes, **overrides)
    groups = tuple(args.only or GROUPS)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so every child is stopped

    started, load_before = time.monotonic(), report.load_average()
    try:
        figures = measure_all(sizes, groups, args.kafka, args.redis_url)
    except (BenchError, ServiceError) as exc:
        say(f"bench failed: {exc}")  # every child is stopped by now; the message has its log's tail
        return 1
    seconds, loads = time.monotonic() - started, (load_before, report.load_average())

    report.print_table(figures)
    say(f"done in {seconds:.0f}s")
    if args.json:
        payload = {
            "figures": [f.as_json() for f in figures],
            "sizes": dataclasses.asdict(sizes),
            "seconds": seconds,
            "machine": report.machine(),
            "load_average": loads,
            "versions": report.versions(),
        }
        args.json.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    if args.smoke or args.only:
        return 0
    options = [f"--{k.replace('_', '-')} {v:g}" for k, v in overrides.items()]
    command = " ".join([".venv/bin/python bench/run.py", *options]) if options else "make bench"
    report.write_section(args.out, report.markdown(figures, notes(sizes), command, seconds, loads))
    where = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    say(f"wrote the service figures to {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
