"""Trainer fleet figures (``make bench-fleet``) -> docs/benchmarks.md, "Trainer fleet".

- SIGKILL of a model's owner -> its standby has published a version with new events
  (seconds; the bar: p99 <= 10 s, here the worst of the rounds);
- the same after a clean stop (SIGTERM: final checkpoint, lease released);
- ``train --all`` on 2 processes sharing 4 models: total rate / the same 4 models in
  4 single-model processes, in the same run (the bar: >= 0.85).

Starts its own Kafka and Redis. Every figure uses the shipped default lease settings.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.events import publish, raw_values  # noqa: E402
from bench.harness import Deployment, Services, local_services, say, wait_until  # noqa: E402
from bench.report import machine, write_heading_section  # noqa: E402
from stream.publish import publish as publish_events  # noqa: E402
from stream.settings import TrainerSettings  # noqa: E402

HEADING = "## Trainer fleet (make bench-fleet)"
PIPELINE = ["preprocessing.StandardScaler", "linear_model.LogisticRegression"]


def handover_seconds(services: Services, workdir: Path, sig: int, round_: int) -> float:
    """Owner and standby on a live stream; signal the owner; seconds until the standby has
    published a version holding events the owner never learned."""
    d = Deployment(services, workdir / f"handover-{sig}-{round_}")
    name = f"m{round_}"
    topic = f"bench-handover-{uuid.uuid4().hex[:8]}"
    d.write_model(name, topic, PIPELINE, checkpoint={"every_events": 100_000, "every_seconds": 1.0})
    store = d.store()
    stop = threading.Event()
    events = ({"features": {"x": i % 7, "y": i % 3}, "label": i % 2 == 0} for i in range(10**9))
    feeder = threading.Thread(
        target=publish_events,
        args=(events, topic, services.kafka, 200.0),
        kwargs={"progress": False, "stop": stop},
        daemon=True,
    )
    with contextlib.ExitStack() as stack:
        owner = stack.enter_context(d.trainer(name))
        wait_until(lambda: (h := store.owner(name)) and h.pid == owner.pid, 60, "the first trainer owning it")
        standby = stack.enter_context(d.trainer(name))
        feeder.start()
        stack.callback(lambda: (stop.set(), feeder.join()))
        wait_until(lambda: store.latest_version(name), 60, "a first version")
        time.sleep(1.5)  # let the standby settle as one
        before = store.fetch_latest(name)[0].n_learned
        at = time.monotonic()
        owner.proc.send_signal(sig)

        def taken_over() -> bool:
            newest = store.fetch_latest(name)
            holder = store.owner(name)
            return bool(newest and holder and holder.pid == standby.pid and newest[0].n_learned > before)

        wait_until(taken_over, 60, "the standby publishing new events")
        return time.monotonic() - at


def fleet_rate(services: Services, workdir: Path, events: int, members: int) -> float:
    """Events per second for 4 models with ``events`` each: ``members`` train --all processes
    (0: one ``train --model`` process per model). Counted from the moment every model has
    published a first version (all are learning) to the moment all have learned everything,
    so process start-up, which differs between the two, is left out."""
    d = Deployment(services, workdir / f"rate-{members}")
    names = [f"r{members}m{i}" for i in range(4)]
    values = raw_values(events)
    for name in names:
        topic = f"bench-rate-{uuid.uuid4().hex[:8]}"
        d.write_model(name, topic, PIPELINE, checkpoint={"every_events": 100_000, "every_seconds": 1.0})
        publish(services.kafka, topic, values)
    store = d.store()
    with contextlib.ExitStack() as stack:
        if members:
            for i in range(members):
                stack.enter_context(d.process(f"all-{i}", "train", "--all"))
        else:
            for name in names:
                stack.enter_context(d.trainer(name))

        def learned() -> list[int] | None:
            metas = [store.fetch_latest(name) for name in names]
            return [m[0].n_learned for m in metas] if all(metas) else None

        at_start = wait_until(learned, 120, "every model learning")
        started = time.monotonic()
        wait_until(lambda: learned() == [events] * 4, 600, "every model through its backlog")
        return (4 * events - sum(at_start)) / (time.monotonic() - started)


def render(kill: list[float], term: list[float], rates: list[tuple[float, float]], events: int) -> str:
    m = machine()
    ttl = TrainerSettings().trainer_lease_seconds
    ratios = [a / b for a, b in rates]
    worst_kill = max(kill)
    lines = [
        HEADING,
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; run by `make bench-fleet` "
        f"with the shipped lease settings (TTL {ttl:g} s, renewed every {ttl / 3:g} s).",
        "",
        "| figure | result | bar | met |",
        "|---|---|---|---|",
        f"| SIGKILL of a model's owner -> its standby has published a version with new events, "
        f"worst of {len(kill)} (median {statistics.median(kill):.1f} s) | {worst_kill:.1f} s | <= 10 s | "
        f"{'yes' if worst_kill <= 10 else 'NO'} |",
        f"| planned hand-over (SIGTERM: final checkpoint, lease released), worst of {len(term)} "
        f"(median {statistics.median(term):.1f} s) | {max(term):.1f} s | about 1 s | - |",
        f"| `train --all` on 2 processes, 4 models / 4 single-model processes, median of {len(rates)} "
        f"({events:,} events a model) | {statistics.median(ratios):.2f} | >= 0.85 | "
        f"{'yes' if statistics.median(ratios) >= 0.85 else 'NO'} |",
        "",
        "Rounds: SIGKILL "
        + ", ".join(f"{s:.1f}" for s in kill)
        + " s; SIGTERM "
        + ", ".join(f"{s:.1f}" for s in term)
        + " s; rates (fleet / single, ev/s) "
        + ", ".join(f"{a:,.0f} / {b:,.0f}" for a, b in rates)
        + ".",
        "",
        "After a SIGKILL the standby waits for the owner's lease to expire: between TTL minus one "
        "renewal period and the TTL after the kill, then it restores the newest checkpoint, seeks "
        "and publishes within its checkpoint period (1 s here). Both rates are counted from when "
        "every model has published a first version to when all are through their backlog (start-up "
        "left out); a `train --all` member runs each of its models in a worker process of its own, "
        "so the two configurations run the same learning processes plus one supervisor each.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=100_000, help="backlog of each model (rate figure)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    kill, term, rates = [], [], []
    with tempfile.TemporaryDirectory() as tmp, local_services(Path(tmp)) as services:
        for r in range(args.rounds):
            kill.append(handover_seconds(services, Path(tmp), signal.SIGKILL, r))
            term.append(handover_seconds(services, Path(tmp), signal.SIGTERM, r))
            say(f"round {r}: SIGKILL {kill[-1]:.2f} s, SIGTERM {term[-1]:.2f} s")
        for r in range(min(args.rounds, 3)):
            fleet = fleet_rate(services, Path(tmp) / f"f{r}", args.events, members=2)
            single = fleet_rate(services, Path(tmp) / f"s{r}", args.events, members=0)
            rates.append((fleet, single))
            say(f"rates {r}: fleet {fleet:,.0f} ev/s, single {single:,.0f} ev/s")
    write_heading_section(args.out, HEADING, render(kill, term, rates, args.events))
    print(f"wrote the fleet section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
