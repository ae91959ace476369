"""Where the trainer should fetch and decode: the alternatives measured against each other.

Each variant is the plain prequential loop (predict_one, Accuracy.update, learn_one) in a
fresh interpreter over the same Phishing events on a real Kafka topic, timed over the
same 10%..90% slice; only where the events come from changes:

  plain           values read from Kafka first, decoded up front with orjson (the
                  baseline of ``make bench``)
  in-process      librdkafka (confluent-kafka) consuming in the learning process, each
                  poll's values decoded there (``stream.decoding.decode_many``) before
                  they are learned: fetch and parse on librdkafka's C threads, decoding
                  on the learning thread
  fetcher         today's design: ``stream.fetcher.Fetcher``, a process of its own that
                  consumes and decodes on the other core and pipes decoded batches
  busy neighbour  ``plain`` while another process spins on the other core: what that
                  core's load alone does to River's own predict_one + learn_one

Variants alternate order from round to round; a ratio is the median over rounds of the
variant's rate over ``plain``'s in the same round. Also printed: decoding's cost per
event on its own (orjson + the schema's checks), in this interpreter.

Run: .venv/bin/python bench/trainer_alternatives.py [--events 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, ROOT)

from bench.events import publish, raw_values  # noqa: E402
from bench.harness import local_services, say  # noqa: E402
from bench.stats import median  # noqa: E402
from bench.trainer_rate import HOEFFDING, LINEAR  # noqa: E402

VARIANTS = ("plain", "in-process", "fetcher", "busy neighbour")

# One variant in a fresh interpreter: argv = variant, bootstrap, topic, steps (JSON), events.
CHILD = r"""
import gc, json, sys
sys.path.insert(0, sys.argv[6])
import orjson
from confluent_kafka import Consumer, TopicPartition
from river import metrics
from bench.plain_loop import pipeline, prequential
from stream.decoding import decode_many
from stream.fetcher import Fetcher

variant, bootstrap, topic = sys.argv[1:4]
steps, n = json.loads(sys.argv[4]), int(sys.argv[5])
config = {"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
          "fetch.max.bytes": 16 * 1024 * 1024, "max.partition.fetch.bytes": 4 * 1024 * 1024}


def events():
    if variant in ("plain", "busy neighbour"):
        consumer = Consumer(config)
        consumer.assign([TopicPartition(topic, 0, 0)])
        values = []
        while len(values) < n:
            values += [m.value() for m in consumer.consume(2000, 1.0)]
        consumer.close()
        decoded = [(e["features"], e["label"]) for e in map(orjson.loads, values[:n])]
        return lambda: iter(decoded)
    if variant == "in-process":
        consumer = Consumer(config)
        consumer.assign([TopicPartition(topic, 0, 0)])

        def stream():
            left = n
            while left > 0:
                values = [m.value() for m in consumer.consume(2000, 1.0)][:left]
                left -= len(values)
                yield from decode_many(values, "classification")
        return stream
    fetcher = Fetcher(bootstrap, {}, {topic: {0: 0}}, {topic: "classification"})
    fetcher.start()

    def piped():
        left = n
        while left > 0:
            for batch in fetcher.get(1.0):
                events = batch.events[:left]
                left -= len(events)
                yield from events
        fetcher.stop()
    return piped


source = events()
model, metric = pipeline(steps), metrics.Accuracy()
gc.collect()
gc.freeze()  # as the trainer does: no full collection over start-up objects
rate = prequential(source(), n, model, metric)
print(json.dumps({"rate": rate, "accuracy": metric.get()}))
"""

SPIN = "import time\nwhile True:\n    sum(range(1000))\n"


def run_variant(variant: str, bootstrap: str, topic: str, steps: list, events: int) -> float:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if variant == "busy neighbour" else None
    try:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, variant, bootstrap, topic, json.dumps(steps), str(events), ROOT],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if out.returncode:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)["rate"]


def decoding_cost(values: list[bytes]) -> float:
    """Microseconds per event of ``decode_many`` alone, best of 5."""
    from stream.decoding import decode_many

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        decode_many(values, "classification")
        best = min(best, time.perf_counter() - started)
    return best / len(values) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    values = raw_values(args.events)
    print(f"decode_many: {decoding_cost(values[:20_000]):.2f} us an event (orjson + the schema's checks)")
    with tempfile.TemporaryDirectory() as tmp, local_services(Path(tmp)) as services:
        topic = "bench-alternatives"
        publish(services.kafka, topic, values)
        for model in (LINEAR, HOEFFDING):
            rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for r in range(args.rounds):
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    rate = run_variant(variant, services.kafka, topic, model.steps, args.events)
                    rates[variant].append(rate)
                say(f"{model.title}: round {r + 1} of {args.rounds}")
            print(f"\n{model.title}")
            print("| variant | events/s (median) | / plain (median of rounds) | rounds |")
            print("|---|---|---|---|")
            for variant in VARIANTS:
                ratios = [a / b for a, b in zip(rates[variant], rates["plain"], strict=True)]
                shown = ", ".join(f"{x:.2f}" for x in ratios)
                print(f"| {variant} | {median(rates[variant]):,.0f} | {median(ratios):.2f} | {shown} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
