"""Where the trainer's time goes per event, without Kafka: one interpreter, the same events.

The trainer-rate bars of SPEC section 6 compare the trainer with a plain River loop
over events decoded up front. This splits the gap into steps, each a loop over the same
Phishing events (cycled), alternating the variants so that machine noise hits them alike:

  plain         decoded up front: predict_one, Accuracy.update, learn_one (the baseline)
  + decode      the same loop decoding each raw value in it (stream.events.decode)
  + learner     stream.learner.Learner (rolling metric, drift and error-rate monitors,
                data-drift sample) instead of the bare loop, decoding in the loop

The trainer from Kafka (make bench) adds the fetcher process and the batches on top.

Run: .venv/bin/python bench/where_time_goes.py [--events 60000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from river import datasets, linear_model, metrics, preprocessing, tree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_store.specs import ModelSpec  # noqa: E402
from stream.events import decode  # noqa: E402
from stream.learner import Learner  # noqa: E402

MODELS: dict[str, tuple[Callable[[], object], list]] = {
    "StandardScaler | LogisticRegression": (
        lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}],
    ),
    "HoeffdingTreeClassifier": (tree.HoeffdingTreeClassifier, ["tree.HoeffdingTreeClassifier"]),
}


def rate(loop: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    loop()
    return n / (time.perf_counter() - started)


def variants(make: Callable[[], object], pipeline: list, raws: list[bytes]) -> dict[str, Callable[[], None]]:
    spec = ModelSpec.model_validate(
        {"name": "b", "topic": "b", "task": "classification", "pipeline": pipeline, "metrics": ["Accuracy"]}
    )

    def with_decode() -> None:
        model, acc = make(), metrics.Accuracy()
        for raw in raws:
            x, y = decode(raw, "classification")
            acc.update(y, model.predict_one(x))
            model.learn_one(x, y)

    def with_learner() -> None:
        learner = Learner.from_spec(spec)
        for raw in raws:
            x, y = decode(raw, "classification")
            learner.learn_one(x, y)

    return {"+ decode": with_decode, "+ learner": with_learner}


def plain_rate(make: Callable[[], object], raws: list[bytes]) -> float:
    """The baseline, timed as the bench's: the loop only, over values decoded before."""
    decoded = [orjson.loads(r) for r in raws]
    model, acc = make(), metrics.Accuracy()

    def loop() -> None:
        for d in decoded:
            x, y = d["features"], d["label"]
            acc.update(y, model.predict_one(x))
            model.learn_one(x, y)

    return rate(loop, len(raws))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = list(itertools.islice(itertools.cycle(datasets.Phishing()), args.events))
    raws = [orjson.dumps({"features": x, "label": y}) for x, y in rows]
    for name, (make, pipeline) in MODELS.items():
        loops = variants(make, pipeline, raws)
        rates: dict[str, list[float]] = {"plain": [], **{k: [] for k in loops}}
        for _ in range(args.rounds):
            rates["plain"].append(plain_rate(make, raws))
            for key, loop in loops.items():
                rates[key].append(rate(loop, len(raws)))
        base = statistics.median(rates["plain"])
        print(f"\n{name} ({args.events:,} events, median of {args.rounds})")
        previous = base
        for key, values in rates.items():
            value = statistics.median(values)
            extra = (1 / value - 1 / previous) * 1e6 if key != "plain" else 0.0
            print(
                f"  {key:10s} {value:>9,.0f} ev/s  {1e6 / value:6.1f} us/event"
                f"  (+{extra:.1f} us)  ratio to plain {value / base:.2f}"
            )
            previous = value
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
