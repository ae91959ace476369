"""Baseline of the trainer-rate figures: the plain River prequential loop, nothing else.

Run in a fresh interpreter (as the trainer is) over the very values the trainer reads
from Kafka, decoded up front with orjson, so only River's own work is timed. The rate
is taken over the same 10%..90% slice of the events as the trainer's.

    python bench/plain_loop.py --values FILE --pipeline '<JSON list of YAML steps>'
prints {"rate": events/s, "accuracy": ..., "scored_accuracy": ..., "events": n} as JSON.

With ``--steps`` it runs the loop in steps instead, for a bench that takes turns with the
trainer (bench/trainer_rate.py): it prints {"ready": n} once the values are decoded and the
model built, then reads one number a line, runs the loop up to that event and prints
{"events": k, "seconds": s} (the loop alone timed); at the end of its input it prints the
accuracies as above.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

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


class Steps:
    """The same loop run in steps: ``advance(to)`` learns up to event ``to`` and says how
    many events that was and how long the loop alone took."""

    def __init__(self, data: list[tuple[dict, Any]], model: Any, metric: Any) -> None:
        self.data, self.model, self.metric = data, model, metric
        self.position = 0

    def advance(self, to: int) -> tuple[int, float]:
        chunk = self.data[self.position : max(self.position, min(to, len(self.data)))]
        model, metric, clock = self.model, self.metric, time.perf_counter
        started = clock()
        for x, y in chunk:
            y_pred = model.predict_one(x)
            metric.update(y, y_pred)
            model.learn_one(x, y)
        elapsed = clock() - started
        self.position += len(chunk)
        return len(chunk), elapsed


def decoded(values: list[bytes]) -> list[tuple[dict, Any]]:
    events = [orjson.loads(v) for v in values]
    return [(e["features"], e["label"]) for e in events]


def accuracies(metric: Any, n: int) -> dict[str, float]:
    # The trainer scores only real predictions (a fresh tree predicts None): the same here,
    # counted after the loop, so the check that both learned the same events compares like with like.
    unscored = sum(row.get(None, 0) for row in metric.cm.data.values())
    scored = metric.cm.n_samples - unscored
    return {
        "accuracy": metric.get(),
        "scored_accuracy": metric.cm.total_true_positives / scored if scored else 0.0,
        "events": n,
    }


def run(values: list[bytes], steps: list[Any]) -> dict[str, float]:
    data = decoded(values)
    model, metric = pipeline(steps), metrics.Accuracy()
    rate = prequential(data, len(data), model, metric)
    return {"rate": rate, **accuracies(metric, len(data))}


def serve_steps(values: list[bytes], steps: list[Any], commands: IO[str], out: IO[str]) -> None:
    """``--steps``: one ``advance`` a line of ``commands``, its answer a line of ``out``."""
    data = decoded(values)
    loop = Steps(data, pipeline(steps), metrics.Accuracy())

    def say(answer: dict) -> None:
        out.write(orjson.dumps(answer).decode() + "\n")
        out.flush()

    say({"ready": len(data)})
    for line in commands:
        events, seconds = loop.advance(int(line))
        say({"events": events, "seconds": seconds})
    say(accuracies(loop.metric, loop.position))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", required=True, help="file of message values, one per line")
    parser.add_argument("--pipeline", required=True, help="the model YAML's pipeline, as JSON")
    parser.add_argument("--steps", action="store_true", help="run in steps read from stdin")
    args = parser.parse_args()
    with open(args.values, "rb") as f:
        values = [line for line in f.read().split(b"\n") if line]
    if args.steps:
        serve_steps(values, orjson.loads(args.pipeline), sys.stdin, sys.stdout)
    else:
        print(orjson.dumps(run(values, orjson.loads(args.pipeline))).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
