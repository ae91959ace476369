"""Pending-joins figures (``make bench-pending``) -> docs/benchmarks.md, "Pending joins".

What 100,000 predictions waiting for a label cost the serving side, now that a replica
loads only the serving artefact and checkpoints hold the join by log position:

- one replica serves two models, both learning a steady stream with a version every
  second: ``probe`` (no prediction log) and ``busy`` (shipped Phishing pipeline,
  predictions logged, delayed labels);
- phase "nothing pending": ``busy`` has no pending prediction; phase "100,000 pending":
  100,000 predictions of ``busy`` were served (and logged) and never labelled;
- in each phase wrk sends ``POST /models/probe/predict`` on 16 connections while versions
  of both models arrive, so the p99 shows what loading ``busy``'s versions costs requests;
- per phase: ``busy``'s checkpoint bytes (artefact, training part), the replica's load
  time per version (``streamlearn_snapshot_load_seconds``), and the p99;
- then the replica's resident memory, sampled over ``--minutes`` of versions every second.
Starts its own Kafka and Redis.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.events import an_instance, paced_sender, phishing_events, producer  # noqa: E402
from bench.harness import Deployment, local_services, say, wait_until  # noqa: E402
from bench.report import machine, write_heading_section  # noqa: E402
from bench.serving import CONNECTIONS, predict_script, wrk  # noqa: E402
from bench.trainer_rate import LINEAR  # noqa: E402

HEADING = "## Pending joins (make bench-pending)"
PENDING = 100_000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def load_seconds(port: int, model: str) -> float | None:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("streamlearn_snapshot_load_seconds{") and f'model="{model}"' in line:
            return float(line.split()[-1])
    return None


def served(port: int, model: str) -> int | None:
    return httpx.get(f"http://127.0.0.1:{port}/models/{model}", timeout=5).json().get("version")


def version_loads(port: int, model: str, seconds: float) -> list[float]:
    """Load time of each new version of ``model`` the replica served during ``seconds``."""
    seen, loads, end = None, [], time.monotonic() + seconds
    while time.monotonic() < end:
        version = served(port, model)
        if version != seen:
            value = load_seconds(port, model)
            if seen is not None and value is not None:
                loads.append(value * 1000)
            seen = version
        time.sleep(0.05)
    return loads


def logged(store) -> int:
    """Predictions of ``busy`` its newest version has read from the prediction log."""
    return sum(store.fetch_latest("busy")[0].prediction_offsets.values())


def fill(port: int, model: str, n: int) -> None:
    """``n`` predictions of ``model`` that never get a label (batches of 1000, each logged)."""
    with httpx.Client(timeout=60) as client:
        instance = an_instance()
        for start in range(0, n, 1000):
            body = {"instances": [instance] * min(1000, n - start)}
            client.post(f"http://127.0.0.1:{port}/models/{model}/predict/batch", json=body).raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="each wrk run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=10, help="the memory run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    shipped = yaml.safe_load((ROOT / "configs" / "models" / "phishing.yaml").read_text())
    every_second = {"every_events": 1_000_000, "every_seconds": 1.0, "keep": 20}
    rows, memory = [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, local_services(Path(tmp)) as services:
        d = Deployment(services, Path(tmp) / "pending")
        d.write_model("probe", "probe", LINEAR.steps, checkpoint=every_second)
        busy = {k: v for k, v in shipped.items() if k not in ("name", "topic", "checkpoint")}
        d.write_model(
            "busy",
            "busy",
            busy.pop("pipeline"),
            **{**busy, "checkpoint": every_second, "delayed_labels": {"max_pending": PENDING}},
        )
        stop = threading.Event()
        out = producer(services.kafka)
        senders = [
            threading.Thread(target=paced_sender, args=(out, topic, 50, stop, phishing_events()), daemon=True)
            for topic in ("probe", "busy")
        ]
        store = d.store()
        with d.trainer("probe"), d.trainer("busy"), d.replica("a") as replica:
            for s in senders:
                s.start()
            for model in ("probe", "busy"):
                wait_until(lambda m=model: served(replica.port, m), 120, f"the replica serving {model}")
            script = predict_script(Path(tmp) / "probe.lua", an_instance())
            url = f"http://127.0.0.1:{replica.port}/models/probe/predict"
            wrk(url, 5, script)  # warm-up
            for phase, pending in (("nothing pending", 0), (f"{PENDING:,} pending", PENDING)):
                if pending:
                    say(f"serving {pending:,} predictions of busy that never get a label")
                    fill(replica.port, "busy", pending)
                    wait_until(lambda: logged(store) >= PENDING, 300, "a version of busy holding them all")
                p99s = []
                for _ in range(args.repeat):
                    p99s.append(wrk(url, args.seconds, script).p99_ms)
                loads = version_loads(replica.port, "busy", 10)
                meta = store.fetch_latest("busy")[0]
                rows.append((phase, meta.blob_bytes, meta.training_bytes, loads, p99s))
                say(f"{phase}: p99 {p99s} ms, loads {loads} ms, {meta.blob_bytes}/{meta.training_bytes} B")
            say(f"memory run: {args.minutes} minutes of versions every second")
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end:
                memory.append(rss_mib(replica.pid))
                time.sleep(10)
            memory.append(rss_mib(replica.pid))
        stop.set()
    (_, _, _, _, quiet), (_, _, _, _, loaded) = rows
    ratio = statistics.median(loaded) / statistics.median(quiet)
    growth = memory[-1] / memory[0] - 1
    m = machine()
    load_after = os.getloadavg()[0]
    lines = [
        HEADING,
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; `make bench-pending`: one replica "
        "serving `probe` (StandardScaler | LogisticRegression, no prediction log) and `busy` (the shipped "
        "Phishing YAML, predictions logged), both learning 50 events/s with a version every second; wrk "
        f"on `POST /models/probe/predict`, {CONNECTIONS} connections, {args.seconds:g} s x {args.repeat}; "
        f"load average {load_before:.1f} at the start, {load_after:.1f} at the end.",
        "",
        "Before the split snapshot and the bounded join (issue 19's report, `make demo` under load), a "
        "version with many predictions pending was a 28.4 MB blob that every replica unpickled whole "
        "(1.5 s each), and /predict's p99 reached 402 ms while versions arrived.",
        "",
        "| phase | busy's artefact | busy's training part | replica load per version (median, max) "
        "| probe /predict p99 (median of runs) |",
        "|---|---|---|---|---|",
    ]
    for phase, blob, training, loads, p99s in rows:
        load = f"{statistics.median(loads):.1f} ms, {max(loads):.1f} ms" if loads else "n/a"
        lines.append(
            f"| {phase} | {blob:,} B | {training:,} B | {load} | {statistics.median(p99s):.2f} ms "
            f"({', '.join(f'{p:.2f}' for p in p99s)}) |"
        )
    lines += [
        "",
        "| figure | result | bar | met |",
        "|---|---|---|---|",
        f"| p99 with {PENDING:,} pending / nothing pending | {ratio:.2f} | <= 1.2 | "
        f"{'yes' if ratio <= 1.2 else 'NO'} |",
        f"| p99 with {PENDING:,} pending | {statistics.median(loaded):.2f} ms | <= 5 ms | "
        f"{'yes' if statistics.median(loaded) <= 5 else 'NO'} |",
        f"| replica memory over {args.minutes:g} minutes of versions every second | "
        f"{memory[0]:.0f} -> {memory[-1]:.0f} MiB ({growth:+.1%}) | growth < 10% | "
        f"{'yes' if growth < 0.10 else 'NO'} |",
        "",
    ]
    write_heading_section(args.out, HEADING, "\n".join(lines))
    print(f"wrote the pending-joins section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
