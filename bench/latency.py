"""Latency figures seen from outside: produce -> a replica serves a version containing the
event, and rollback -> every replica answers with the rolled-back version.

Produce -> servable: while a trainer checkpoints every second and a background
producer sends a steady stream, marker events go out at random gaps (so they fall
at every phase of the checkpoint cycle); each marker's offset comes from the
producer's RecordMetadata. A poller asks the replica for its served version's
offsets (``GET /models/{name}``) every 10 ms; a marker is servable at the first
answer whose offset is past it.

Rollback: ``POST /models/{name}/rollback`` (pin, admin key) to one replica while
both replicas are asked ``POST /predict`` every few ms, until both answer with the
target; then unpin and wait (untimed) until both serve the promoted version again.
Targets alternate between two old versions, so every rollback changes what serves.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import threading
import time
from dataclasses import dataclass

import httpx
import orjson

from bench.events import paced_sender, phishing_events, producer
from bench.harness import BenchError, Child, wait_until
from bench.report import Figure
from bench.stats import median, percentile

POLL_EVERY = 0.01
PREDICT_POLL_EVERY = 0.005


@dataclass
class ServedOffsets:
    """What a replica served over time: (time answered, next offset of partition 0), appended
    by the poller thread one tuple at a time."""

    points: list[tuple[float, int]]

    def first_past(self, offset: int, since: float) -> float | None:
        """Time of the first answer after ``since`` whose version includes ``offset``."""
        points = list(self.points)
        start = bisect.bisect_left(points, since, key=lambda p: p[0])
        return next((t for t, served in points[start:] if served > offset), None)


def _poll_served(url: str, stop: threading.Event, into: ServedOffsets, errors: list[str]) -> None:
    with httpx.Client(timeout=2) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = client.get(url)
                if response.status_code == 200:
                    offsets = response.json()["metadata"]["offsets"]
                    into.points.append((time.perf_counter(), int(offsets.get("0", -1))))
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                errors.append(repr(exc))
            stop.wait(max(0.0, POLL_EVERY - (time.perf_counter() - started)))


def produce_to_servable(
    replica: Child, model: str, topic: str, bootstrap: str, markers: int, background_rate: float, repeat: int
) -> Figure:
    """Figure 4: p99 of produce -> servable over ``markers`` markers per repeat (bar <= 1.5 s)."""
    served = ServedOffsets([])
    errors: list[str] = []
    stop = threading.Event()
    out = producer(bootstrap)
    background = threading.Thread(
        target=paced_sender, args=(out, topic, background_rate, stop, phishing_events()), daemon=True
    )
    poller = threading.Thread(
        target=_poll_served,
        args=(f"http://127.0.0.1:{replica.port}/models/{model}", stop, served, errors),
        daemon=True,
    )
    marker_values = (orjson.dumps(e) for e in phishing_events())
    rng = random.Random(1)
    p50s, p99s, all_latencies = [], [], []
    background.start()
    poller.start()
    try:
        wait_until(lambda: served.points, 60, "a first version served while events flow")
        for _ in range(repeat):
            sent: list[tuple[float, int]] = []
            for _ in range(markers):
                time.sleep(rng.uniform(0.1, 0.5))
                t0 = time.perf_counter()
                sent.append((t0, out.send(topic, next(marker_values)).get(timeout=10).offset))
            last_t0, last = sent[-1]
            wait_until(
                lambda t0=last_t0, offset=last: served.first_past(offset, t0),
                30,
                f"marker at offset {last} to be served",
            )
            replica.check()
            latencies = [served.first_past(offset, t0) - t0 for t0, offset in sent]
            all_latencies += latencies
            p50s.append(percentile(latencies, 50))
            p99s.append(percentile(latencies, 99))
    finally:
        stop.set()
        background.join(timeout=10)
        poller.join(timeout=10)
        out.close(timeout=10)
    return Figure(
        key="produce_to_servable",
        title="produce -> servable version containing the event, checkpoint every 1 s, p99",
        value=median(p99s),
        unit="s",
        measured=f"p50 {median(p50s):.2f} s, max {max(all_latencies):.2f} s, {markers} markers x {repeat}",
        bar=("<=", 1.5),
        runs=p99s,
        extra={"p50s": p50s, "background_rate": background_rate, "poll_errors": len(errors)},
    )


# -- rollback ------------------------------------------------------------------


async def _serves(client: httpx.AsyncClient, url: str, body: dict, version: int, deadline: float) -> float:
    """Time at which ``url`` first answers a prediction with ``version``."""
    while True:
        response = await client.post(url, json=body)
        now = time.perf_counter()
        if response.status_code == 200 and response.json()["version"] == version:
            return now
        if now > deadline:
            raise BenchError(f"{url} still answers {response.text[:200]} instead of v{version}")
        await asyncio.sleep(PREDICT_POLL_EVERY)


async def _rollback_once(
    client: httpx.AsyncClient, bases: list[str], model: str, admin: str, key: str, target: int, body: dict
) -> float:
    t0 = time.perf_counter()
    deadline = t0 + 10
    request = client.post(
        f"{admin}/models/{model}/rollback",
        json={"version": target, "mode": "pin", "reason": "bench"},
        headers={"X-API-Key": key},
    )
    answer, *served_at = await asyncio.gather(
        request, *(_serves(client, f"{b}/models/{model}/predict", body, target, deadline) for b in bases)
    )
    if answer.status_code != 200:
        raise BenchError(f"rollback to v{target} refused: {answer.status_code} {answer.text}")
    return max(served_at) - t0


async def _rollbacks(bases: list[str], model: str, key: str, body: dict, count: int) -> list[float]:
    async with httpx.AsyncClient(timeout=5) as client:
        listed = (await client.get(f"{bases[0]}/models/{model}/versions")).json()
        promoted = next((v["version"] for v in listed if v["promoted"]), None)
        old = sorted(v["version"] for v in listed if v["version"] != promoted)
        if promoted is None or len(old) < 2:
            raise BenchError(f"need a promoted version and two others to roll back to; have {listed}")
        targets = itertools.cycle(old[:2])
        latencies = []
        for i in range(count):
            admin = bases[i % len(bases)]  # alternate the replica that takes the admin call
            latencies.append(await _rollback_once(client, bases, model, admin, key, next(targets), body))
            unpinned = await client.post(f"{admin}/models/{model}/unpin", headers={"X-API-Key": key})
            unpinned.raise_for_status()
            deadline = time.perf_counter() + 10
            await asyncio.gather(
                *(_serves(client, f"{b}/models/{model}/predict", body, promoted, deadline) for b in bases)
            )
        return latencies


def rollback_to_every_replica(
    replicas: list[Child], model: str, admin_key: str, body: dict, count: int, repeat: int
) -> Figure:
    """Figure 5: p99 of rollback -> every replica answers with the target (bar <= 100 ms)."""
    bases = [f"http://127.0.0.1:{r.port}" for r in replicas]
    p50s, p99s = [], []
    for _ in range(repeat):
        latencies = [s * 1e3 for s in asyncio.run(_rollbacks(bases, model, admin_key, body, count))]
        for replica in replicas:
            replica.check()
        p50s.append(percentile(latencies, 50))
        p99s.append(percentile(latencies, 99))
    return Figure(
        key="rollback_every_replica",
        title=f"rollback -> every replica ({len(replicas)}) answers with it, p99",
        value=median(p99s),
        unit="ms",
        measured=f"p50 {median(p50s):.1f} ms, {count} rollbacks x {repeat}",
        bar=("<=", 100.0),
        runs=p99s,
        extra={"p50s": p50s},
    )
