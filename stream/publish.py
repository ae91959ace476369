"""Replay a CSV file, a JSONL file or a River dataset into a model's topic.

Any Kafka producer can publish events; this is a convenience with a progress bar.
"""

from __future__ import annotations

import csv
import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from stream.kafka_io import ensure_topics, make_producer


class SourceError(ValueError):
    """The input file or dataset cannot be read as events."""


def _convert(text: str) -> Any:
    """CSV cells: empty -> null, true/false -> bool, numbers -> int/float, else string."""
    if text == "":
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def csv_events(path: Path, label_column: str) -> Iterator[dict]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or label_column not in reader.fieldnames:
            raise SourceError(f"{path}: no column '{label_column}' (columns: {reader.fieldnames})")
        for row in reader:
            label = _convert(row.pop(label_column))
            yield {"features": {k: _convert(v) for k, v in row.items()}, "label": label}


def jsonl_events(path: Path, label_column: str) -> Iterator[dict]:
    """Lines are events as they are, or flat records whose ``label_column`` is the label."""
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise SourceError(f"{path}:{n}: not JSON: {exc}") from exc
            if "features" in obj:
                yield obj
            elif label_column in obj:
                label = obj.pop(label_column)
                yield {"features": obj, "label": label}
            else:
                raise SourceError(f"{path}:{n}: neither 'features' nor '{label_column}'")


def dataset_events(name: str) -> Iterator[dict]:
    """A dataset River ships (Phishing, Bananas, TrumpApproval, ...) or a synth generator."""
    from river import datasets

    cls = getattr(datasets, name, None) or getattr(datasets.synth, name, None)
    if not isinstance(cls, type):
        raise SourceError(f"river.datasets has no dataset '{name}'")
    dataset = cls()
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
