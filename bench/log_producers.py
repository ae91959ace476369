"""CPU per record of the prediction log's producer process: kafka-python against librdkafka.

The prediction log's child process (api/prediction_log_producer.py) gets, every few milliseconds, a
batch of records from the replica's thread and hands them to a Kafka producer. This times
that loop alone, for each client in a fresh interpreter (so every thread it starts is in
its CPU time), at a steady rate like a replica's, over the same records, against a local
Kafka. Rounds alternate the clients; figures are medians over rounds.

  kafka-python  the pure-Python producer: ``send`` with a callback and an errback per
                record, the one partition given (so its key hash is skipped), as the
                child did before
  librdkafka    confluent-kafka's ``Producer.produce`` per record, delivery reports for
                failures only, ``poll(0)`` once a batch, as the child does now

Run: .venv/bin/python bench/log_producers.py [--records 150000] [--rate 15000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.events import an_instance, create_topic  # noqa: E402
from bench.harness import local_services, say  # noqa: E402

BATCH_SECONDS = 0.005  # the replica's thread hands on what accumulated this often


def batches(topic: str, records: int, rate: float) -> list[list[bytes]]:
    """The lines the pipe carries: ``[topic, key]`` then the record, per record."""
    features = an_instance()["features"]
    per_batch = max(1, round(rate * BATCH_SECONDS))
    out, lines = [], []
    for i in range(records):
        record = {"id": f"{i:032x}", "model": "live", "version": 12, "features": features, "ts": 1.5}
        record |= {"prediction": True, "proba": {"false": 0.1, "true": 0.9}}
        lines += [orjson.dumps((topic, f"{i:032x}")), orjson.dumps(record)]
        if len(lines) == 2 * per_batch:
            out.append(lines)
            lines = []
    return out + ([lines] if lines else [])


def kafka_python(bootstrap: str, topic: str, work: list[list[bytes]]) -> int:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, acks=1, max_block_ms=2000, request_timeout_ms=5000
    )
    sent = [0]

    def on_sent(_metadata: object) -> None:
        sent[0] += 1

    def on_error(_exc: BaseException) -> None:
        pass

    paced(
        work,
        lambda lines: [
            producer.send(topic, key=orjson.loads(lines[i])[1].encode(), value=lines[i + 1], partition=0)
            .add_callback(on_sent)
            .add_errback(on_error)
            for i in range(0, len(lines), 2)
        ],
    )
    producer.flush(30)
    producer.close(5)
    return sent[0]


def librdkafka(bootstrap: str, topic: str, work: list[list[bytes]]) -> int:
    from confluent_kafka import Producer

    failed = [0]

    def on_delivery(err: object, _msg: object) -> None:
        failed[0] += err is not None

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "acks": 1,
            "delivery.report.only.error": True,
            "on_delivery": on_delivery,
            "partitioner": "murmur2_random",
        }
    )
    produced = [0]

    def one_batch(lines: list[bytes]) -> None:
        produce = producer.produce
        for i in range(0, len(lines), 2):
            topic_, key = orjson.loads(lines[i])
            produce(topic_, lines[i + 1], key.encode())
        produced[0] += len(lines) // 2
        producer.poll(0)

    paced(work, one_batch)
    producer.flush(30)
    return produced[0] - failed[0] - len(producer)


def paced(work: list[list[bytes]], handle: object) -> None:
    """One batch every BATCH_SECONDS, as the replica's thread sends them."""
    started = time.monotonic()
    for n, lines in enumerate(work):
        wait = started + n * BATCH_SECONDS - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        handle(lines)  # type: ignore[operator]


def child(client: str, bootstrap: str, topic: str, records: int, rate: float) -> None:
    """In a fresh interpreter: produce, then print CPU seconds, wall seconds, records sent."""
    work = batches(topic, records, rate)
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    sent = {"kafka-python": kafka_python, "librdkafka": librdkafka}[client](bootstrap, topic, work)
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - started
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(orjson.dumps({"cpu": cpu, "wall": wall, "sent": sent}).decode())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=150_000)
    parser.add_argument("--rate", type=float, default=15_000, help="records per second")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kafka", help="use this Kafka bootstrap instead of starting one")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.child[2], args.records, args.rate)
        return 0
    clients = ["kafka-python", "librdkafka"]
    cpu: dict[str, list[float]] = {c: [] for c in clients}
    with tempfile.TemporaryDirectory(prefix="streamlearn-bench-") as tmp:
        with local_services(Path(tmp), args.kafka, "redis://unused") as services:
            for i in range(args.rounds):
                for client in clients if i % 2 == 0 else clients[::-1]:
                    topic = f"bench-log-{uuid.uuid4().hex[:6]}.predictions"
                    create_topic(services.kafka, topic)
                    cmd = [sys.executable, __file__, "--records", str(args.records), "--rate", str(args.rate)]
                    done = subprocess.run(
                        [*cmd, "--child", client, services.kafka, topic],
                        capture_output=True,
                        text=True,
                        timeout=600,
                    )
                    if done.returncode != 0:
                        raise SystemExit(done.stderr[-3000:])
                    result = orjson.loads(done.stdout.strip().splitlines()[-1])
                    if result["sent"] != args.records:
                        raise SystemExit(f"{client} delivered {result['sent']} of {args.records}")
                    cpu[client].append(result["cpu"] / args.records * 1e6)
                    say(f"{client}: {cpu[client][-1]:.1f} us CPU/record over {result['wall']:.1f} s")
    print(f"{args.records:,} records at {args.rate:,.0f}/s, median of {args.rounds} (min-max):")
    for client, values in cpu.items():
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"  {client:12s} {statistics.median(values):5.1f} us CPU/record ({spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
