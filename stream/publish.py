"""Replay a CSV file, a JSONL file or a River dataset into a model's topic.

Any Kafka producer can publish events; this is a convenience with a progress bar.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from model_store.records import SourceError, rows
from stream.kafka_io import ensure_topics, make_producer


def file_events(path: Path, label_column: str) -> Iterator[dict]:
    """Events from a CSV or JSONL file: rows that are events already (a ``features`` key)
    are kept as they are; flat rows have their ``label_column`` taken out as the label."""
    for n, row in enumerate(rows(path), 1):
        if "features" in row:
            yield row
        elif label_column in row:
            label = row.pop(label_column)
            yield {"features": row, "label": label}
        else:
            raise SourceError(f"{path}: row {n} has neither 'features' nor '{label_column}'")


def _dataset(name: str) -> Any:
    from river import datasets

    cls = getattr(datasets, name, None) or getattr(datasets.synth, name, None)
    if not isinstance(cls, type):
        raise SourceError(f"river.datasets has no dataset '{name}'")
    return cls()


def dataset_size(name: str) -> int | None:
    """Number of samples of a bundled dataset (None for endless generators)."""
    return getattr(_dataset(name), "n_samples", None)


def dataset_events(name: str) -> Iterator[dict]:
    """A dataset River ships (Phishing, Bananas, TrumpApproval, ...) or a synth generator."""
    dataset = _dataset(name)
    for x, y in dataset:
        yield {"features": dict(x), "label": y}


def paced(items: Iterable[dict], rate: float | None) -> Iterator[dict]:
    """Yield at most ``rate`` items per second (no limit when None)."""
    if not rate:
        yield from items
        return
    start = time.monotonic()
    for i, item in enumerate(items):
        wait = start + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        yield item


def publish(
    events: Iterable[dict],
    topic: str,
    bootstrap: str,
    rate: float | None = None,
    limit: int | None = None,
    total: int | None = None,
    progress: bool = True,
    partitions: int = 1,
    stop: threading.Event | None = None,
    client_options: dict | None = None,
) -> int:
    """Send events as JSON to ``topic``; return how many were sent (``stop`` ends early)."""
    ensure_topics(bootstrap, {topic: partitions}, **(client_options or {}))
    producer = make_producer(bootstrap, **(client_options or {}))
    if limit is not None:
        events = itertools.islice(events, limit)
        total = min(total, limit) if total else limit
    sent = 0
    try:
        bar = tqdm(paced(events, rate), total=total, unit="ev", disable=not progress, desc=topic)
        for event in bar:
            if stop is not None and stop.is_set():
                break
            producer.send(topic, orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS))
            sent += 1
        producer.flush()
    finally:
        producer.close(timeout=10)
    return sent
