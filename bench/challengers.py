"""Challenger figure (``make bench-challengers``) -> docs/benchmarks.md, "Challengers".

``streamlearn train`` of a champion with two challengers, reading a pre-published
backlog from Kafka, against the three plain River loops run one after the other on the
same events (the bar: >= 0.85). The trainer's rate is the slope of its learned-events
counter between 10% and 90% of the backlog, as for the other trainer figures; the
three loops' combined rate is 1 / (1/r1 + 1/r2 + 1/r3). Starts its own Kafka and Redis.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Deployment, local_services, say  # noqa: E402
from bench.report import machine, write_heading_section  # noqa: E402
from bench.run import backlog  # noqa: E402
from bench.stats import learning_rate  # noqa: E402
from bench.trainer_rate import HOEFFDING, LINEAR, NO_CHECKPOINT, Pipeline, plain_loop, scrape  # noqa: E402

HEADING = "## Challengers (make bench-challengers)"
L2 = Pipeline(
    "l2",
    "StandardScaler | LogisticRegression(l2=0.01)",
    ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {"l2": 0.01}}],
)


def trainer_rate(services, workdir: Path, log, timeout: float) -> float:
    d = Deployment(services, workdir / f"ch-{uuid.uuid4().hex[:6]}")
    d.write_model(
        "champion",
        log.topic,
        LINEAR.steps,
        checkpoint=NO_CHECKPOINT,
        challengers={"tree": HOEFFDING.steps, "l2": L2.steps},
    )
    with d.trainer("champion") as child:
        return learning_rate(scrape(child, "champion", log.events, timeout), log.events)


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
            trainer = trainer_rate(services, Path(tmp), log, 600)
            loops = [plain_loop(log, p, 600)["rate"] for p in (LINEAR, HOEFFDING, L2)]
            plain = 1 / sum(1 / r for r in loops)
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
            f"LogisticRegression l2): trainer rate / the three plain loops one after the other, median of "
            f"{len(ratios)} | {median:.2f} | >= 0.85 | {'yes' if median >= 0.85 else 'NO'} |",
            "",
            "Rounds (trainer / three loops, ev/s): "
            + ", ".join(f"{t:,.0f} / {p:,.0f}" for t, p in zip(trainers, plains, strict=True))
            + ". The challengers learn in the trainer's learning thread, right after the champion's run "
            "of events; fetching and decoding stay on the fetcher process.",
            "",
        ]
    )
    write_heading_section(args.out, HEADING, section)
    print(f"wrote the challengers section of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
