"""The replica's request metrics: plain counts on the prediction path, read when Prometheus
scrapes (no services)."""

from __future__ import annotations

import random
import threading
from collections import Counter

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from api.manager import ModelManager, Served
from api.serving_monitor import PREDICT_BUCKETS, ServingMonitor
from model_store.snapshot import SnapshotMeta
from model_store.specs import ModelSpec
from tests.helpers.prometheus import sample


def monitor_of(*names: str) -> ServingMonitor:
    specs = {
        n: ModelSpec.model_validate(
            {
                "name": n,
                "topic": n,
                "task": "classification",
                "pipeline": ["linear_model.LogisticRegression"],
                "metrics": ["Accuracy"],
            }
        )
        for n in names
    }
    return ServingMonitor(ModelManager(specs, store=None, signing_key=None))


def served(name: str, version: int) -> Served:
    meta = SnapshotMeta(model=name, task="classification", topic=name, n_learned=1, version=version)
    return Served(name, version, meta, model=None, pinned=False, loaded_at=0.0)


def test_scraped_counts_equal_the_requests_made_and_buckets_match_prometheus_client():
    monitor = monitor_of("a", "b")
    registry = CollectorRegistry()  # prometheus-client's own histogram, fed the same timings
    reference = Histogram("ref_seconds", "", ["model"], buckets=PREDICT_BUCKETS, registry=registry)
    rng = random.Random(7)
    instances: Counter[tuple[str, int]] = Counter()
    requests: Counter[str] = Counter()
    for i in range(5_000):
        name, version, n = rng.choice("ab"), rng.choice([1, 2, 3]), rng.choice([1, 1, 1, 4])
        # every tenth lands exactly on a bucket bound (inclusive), the rest anywhere
        seconds = rng.choice(PREDICT_BUCKETS) if i % 10 == 0 else rng.expovariate(200.0)
        monitor.observe(served(name, version), [{"x": i}] * n, seconds)
        reference.labels(name).observe(seconds)
        instances[(name, version)] += n
        requests[name] += 1

    text = generate_latest(monitor.registry).decode()
    ref = generate_latest(registry).decode()
    for (name, version), n in instances.items():
        assert sample(text, "streamlearn_predictions_total", model=name, version=str(version)) == n
    for name, n in requests.items():
        assert sample(text, "streamlearn_predict_seconds_count", model=name) == n
        for bound in [*map(str, PREDICT_BUCKETS), "+Inf"]:
            ours = sample(text, "streamlearn_predict_seconds_bucket", model=name, le=bound)
            assert ours == sample(ref, "ref_seconds_bucket", model=name, le=bound), bound
        ours = sample(text, "streamlearn_predict_seconds_sum", model=name)
        assert abs(ours - sample(ref, "ref_seconds_sum", model=name)) < 1e-9


def test_a_model_never_asked_has_an_empty_histogram_and_no_count():
    text = generate_latest(monitor_of("a").registry).decode()
    assert sample(text, "streamlearn_predict_seconds_count", model="a") == 0
    assert sample(text, "streamlearn_predictions_total", model="a") is None


def test_scrapes_during_requests_lose_no_count():
    """Requests keep adding (new versions too) while another thread scrapes: no scrape fails,
    counts only grow, and the last scrape has every request."""
    monitor = monitor_of("a")
    done = threading.Event()
    made = 0

    def requests() -> None:
        nonlocal made
        for i in range(60_000):
            monitor.observe(served("a", 1 + i // 500), ({"x": i},), 0.001)
            made += 1
        done.set()

    thread = threading.Thread(target=requests)
    thread.start()
    seen = []
    while not done.is_set():
        text = generate_latest(monitor.registry).decode()
        seen.append(sample(text, "streamlearn_predict_seconds_count", model="a"))
    thread.join()
    assert seen == sorted(seen)
    text = generate_latest(monitor.registry).decode()
    assert sample(text, "streamlearn_predict_seconds_count", model="a") == made == 60_000
    per_version = [
        sample(text, "streamlearn_predictions_total", model="a", version=str(v)) for v in range(1, 121)
    ]
    assert per_version == [500] * 120
