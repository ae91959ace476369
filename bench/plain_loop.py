"""Baseline of the trainer-rate figures: the plain River prequential loop, nothing else.

Run in a fresh interpreter (as the trainer is) over the very values the trainer reads
from Kafka, decoded up front with orjson, so only River's own work is timed. The rate
is taken over the same 10%..90% slice of the events as the trainer's.

    python bench/plain_loop.py --values FILE --pipeline '<JSON list of YAML steps>'
prints {"rate": events/s, "accuracy": ..., "scored_accuracy": ..., "events": n} as JSON.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson
from river import compose, metrics


def build(step: Any) -> Any:
    """A YAML step (``'module.Class'`` or ``{'module.Class': {param: value}}``) as a River object.

    Deliberately not the trainer's builder: the baseline must not share its code."""
    if isinstance(step, str):
        path, params = step, {}
    else:
        ((path, params),) = step.items()
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(f"river.{module}"), name)
    kwargs = {
        key: build(value)
        if isinstance(value, dict) and len(value) == 1 and "." in next(iter(value))
        else value
        for key, value in (params or {}).items()
    }
    return cls(**kwargs)


def pipeline(steps: list[Any]) -> Any:
    built = [build(s) for s in steps]
    return built[0] if len(built) == 1 else compose.Pipeline(*built)


def prequential(events: Iterable[tuple[dict, Any]], n: int, model: Any, metric: Any) -> float:
    """predict_one, ``metric.update``, learn_one over ``n`` events: events per second over
    the 10%..90% slice (the trainer's figures take the same slice)."""
    lo, hi = n // 10, n * 9 // 10
    clock = time.perf_counter
    started = ended = 0.0
    for i, (x, y) in enumerate(events):
        if i == lo:
            started = clock()
        elif i == hi:
            ended = clock()
        y_pred = model.predict_one(x)
        metric.update(y, y_pred)
        model.learn_one(x, y)
    return (hi - lo) / (ended - started)


def run(values: list[bytes], steps: list[Any]) -> dict[str, float]:
    events = [orjson.loads(v) for v in values]
    data = [(e["features"], e["label"]) for e in events]
    model, metric = pipeline(steps), metrics.Accuracy()
    n = len(data)
    rate = prequential(data, n, model, metric)
    # The trainer scores only real predictions (a fresh tree predicts None): the same here,
    # counted after the loop, so the check that both learned the same events compares like with like.
    unscored = sum(row.get(None, 0) for row in metric.cm.data.values())
    scored = metric.cm.n_samples - unscored
    return {
        "rate": rate,
        "accuracy": metric.get(),
        "scored_accuracy": metric.cm.total_true_positives / scored if scored else 0.0,
        "events": n,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", required=True, help="file of message values, one per line")
    parser.add_argument("--pipeline", required=True, help="the model YAML's pipeline, as JSON")
    args = parser.parse_args()
    with open(args.values, "rb") as f:
        values = [line for line in f.read().split(b"\n") if line]
    print(orjson.dumps(run(values, orjson.loads(args.pipeline))).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
