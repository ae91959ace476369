"""Challenger figure (``make bench-challengers``) -> docs/benchmarks.md, "Challengers".

``streamlearn train`` of a champion with two challengers, reading a pre-published
backlog from Kafka, against the three plain River loops one after the other on the same
events (the bar: >= 0.85). They take turns as in the other trainer figures
(``bench.trainer_rate.interleaved``): the trainer learns for half a second and is paused,
then each plain loop learns up to the event it reached; the baseline's rate is the events
over the three loops' summed time. Starts its own Kafka and Redis.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Peaks, local_services, say  # noqa: E402
from bench.report import machine, write_heading_section  # noqa: E402
from bench.run import backlog  # noqa: E402
from bench.trainer_rate import HOEFFDING, LINEAR, Pipeline, interleaved  # noqa: E402

HEADING = "## Challengers (make bench-challengers)"
L2 = Pipeline(
    "l2",
    "StandardScaler | LogisticRegression(l2=0.01)",
    ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {"l2": 0.01}}],
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    ratios, trainers, plains = [], [], []
    with tempfile.TemporaryDirectory() as tmp, local_services(Path(tmp)) as services:
        log = backlog(services, Path(tmp), "challengers", args.events)
        for i in range(args.repeat):
            pair = interleaved(services, Path(tmp), log, LINEAR, 600, Peaks(), (HOEFFDING, L2))
            trainer, plain = pair.trainer_rate, pair.plain_rate
            trainers.append(trainer)
            plains.append(plain)
            ratios.append(trainer / plain)
            say(f"round {i}: trainer {trainer:,.0f} ev/s, three loops {plain:,.0f} ev/s, {ratios[-1]:.2f}")
    m = machine()
    median = statistics.median(ratios)
    section = "\n".join(
        [
            HEADING,
            "",
            f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores; `make bench-challengers`, "
            f"{args.events:,} Phishing events, no checkpoints during the run.",
            "",
            "| figure | result | bar | met |",
            "|---|---|---|---|",
            f"| champion (StandardScaler \\| LogisticRegression) + 2 challengers (HoeffdingTree, "
            f"LogisticRegression l2): trainer rate / the three plain loops one after the other, taking "
            "turns, median of "
            f"{len(ratios)} | {median:.2f} | >= 0.85 | {'yes' if median >= 0.85 else 'NO'} |",
            "",
            "Rounds (trainer / three loops, ev/s): "
            + ", ".join(f"{t:,.0f} / {p:,.0f}" for t, p in zip(trainers, plains, strict=True))
            + ". The trainer and the three loops take turns of half a second (bench/trainer_rate.py), "
            "so both sides run under the same host load. The challengers learn in the trainer's "
            "learning thread, right after the champion's run of events; fetching and decoding stay "
            "on the fetcher process.",
            "",
        ]
    )
    write_heading_section(args.out, HEADING, section)
    print(f"wrote the challengers section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
