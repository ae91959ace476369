"""Where the trainer's time goes per event, without Kafka: one interpreter, the same events.

The trainer-rate bars (docs/benchmarks.md) compare the trainer with a plain River loop
over events decoded up front. This splits the gap into the steps of the trainer's
learning thread, each a loop over the same Phishing events (cycled), alternating the
variants so that machine noise hits them alike:

  plain         decoded up front: predict_one, Accuracy.update, learn_one (the baseline)
  + handover    the same loop, the events loaded in it from the fetcher's frames
                (stream/handover.py; the fetcher process decodes them on the other core,
                its cost per event is printed apart)
  + learner     stream.learner.Learner.learn_many over those batches instead of the bare
                loop: rolling metric, drift and error-rate monitors, data-drift sample,
                one event in 16 timed

The trainer from Kafka (make bench) adds the pipe, the telemetry and the machine's other
processes (the fetcher, the broker) on top.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.handover_counts import fetcher_frames, framed_by_a_fetcher  # noqa: E402
from stream import handover  # noqa: E402


def models() -> dict[str, tuple[Callable[[], object], list]]:
    """The two models, as River and as a model spec's pipeline. River is imported here, never
    at the top, as in bench/handover_counts.py, whose child frames the events."""
    from river import linear_model, preprocessing, tree

    return {
        "StandardScaler | LogisticRegression": (
            lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
            ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}],
        ),
        "HoeffdingTreeClassifier": (tree.HoeffdingTreeClassifier, ["tree.HoeffdingTreeClassifier"]),
    }


def per_event(loop: Callable[[], None], n: int) -> float:
    """Seconds per event of one run of ``loop`` over ``n`` events."""
    started = time.perf_counter()
    loop()
    return (time.perf_counter() - started) / n


def variants(
    make: Callable[[], object], pipeline: list, raws: list[bytes], blobs: list[bytes]
) -> dict[str, Callable[[], None]]:
    from river import metrics

    from model_store.specs import ModelSpec
    from stream.learner import Learner

    spec = ModelSpec.model_validate(
        {"name": "b", "topic": "b", "task": "classification", "pipeline": pipeline, "metrics": ["Accuracy"]}
    )
    decoded = [orjson.loads(r) for r in raws]

    def plain() -> None:
        model, acc = make(), metrics.Accuracy()
        for d in decoded:
            x, y = d["features"], d["label"]
            acc.update(y, model.predict_one(x))
            model.learn_one(x, y)

    def handed_over() -> None:
        model, acc = make(), metrics.Accuracy()
        for blob in blobs:
            for batch in handover.loads(blob):
                for x, y in batch.events:
                    acc.update(y, model.predict_one(x))
                    model.learn_one(x, y)

    def learner() -> None:
        learner, timed = Learner.from_spec(spec), []
        for blob in blobs:
            for batch in handover.loads(blob):
                learner.learn_many(batch.events, 0, len(batch.events), timed.append)
        learner.settle()

    return {"plain": plain, "+ handover": handed_over, "+ learner": learner}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from river import datasets

    rows = list(itertools.islice(itertools.cycle(datasets.Phishing()), args.events))
    raws = [orjson.dumps({"features": x, "label": y}) for x, y in rows]
    fetcher = statistics.median(per_event(lambda: fetcher_frames(raws), len(raws)) for _ in range(3))
    blobs = framed_by_a_fetcher(raws)["handover"]
    print(f"fetcher process, decoding and framing: {fetcher * 1e6:.1f} us/event (on the other core)")
    for name, (make, pipeline) in models().items():
        loops = variants(make, pipeline, raws, blobs)
        seconds: dict[str, list[float]] = {k: [] for k in loops}
        for i in range(args.rounds):
            order = list(loops.items())
            for key, loop in order if i % 2 == 0 else reversed(order):
                seconds[key].append(per_event(loop, len(raws)))
        base = statistics.median(seconds["plain"])
        print(f"\n{name} ({args.events:,} events, median of {args.rounds})")
        previous = base
        for key, values in seconds.items():
            value = statistics.median(values)
            extra = (value - previous) * 1e6
            print(
                f"  {key:10s} {1 / value:>9,.0f} ev/s  {value * 1e6:6.1f} us/event"
                f"  ({extra:+.1f} us)  ratio to plain {base / value:.2f}"
            )
            previous = value
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
