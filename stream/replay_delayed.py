"""Replay a dataset the way production sees it: predictions through the HTTP API now,
labels to Kafka later (``streamlearn publish --delayed-labels``)."""

from __future__ import annotations

import heapq
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable

import orjson
from tqdm import tqdm

from stream.errors import StreamError
from stream.kafka_io import make_producer
from stream.publish import paced


class ApiUnavailable(StreamError, RuntimeError):
    """The prediction API refused or could not be reached."""


def predict(api: str, model: str, id_: str, features: dict, timeout: float = 5.0) -> dict:
    body = orjson.dumps({"id": id_, "features": features})
    request = urllib.request.Request(
        f"{api.rstrip('/')}/models/{model}/predict", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ApiUnavailable(f"{exc.code} from {request.full_url}: {exc.read()[:300]!r}") from exc
    except OSError as exc:
        raise ApiUnavailable(f"cannot reach {request.full_url}: {exc}") from exc


def replay_delayed(
    events: Iterable[dict],
    model: str,
    topic: str,
    bootstrap: str,
    api: str,
    label_delay: float,
    rate: float | None = None,
    limit: int | None = None,
    stop: threading.Event | None = None,
    client_options: dict | None = None,
    progress: bool = True,
) -> tuple[int, int]:
    """Ask the API for each event's prediction, then publish its label ``label_delay``
    seconds later as a label-only event. Returns (predicted, labels sent)."""
    producer = make_producer(bootstrap, **(client_options or {}))
    due: list[tuple[float, str, object]] = []
    predicted = sent = 0

    def send_due(now: float) -> None:
        nonlocal sent
        while due and due[0][0] <= now:
            _, id_, label = heapq.heappop(due)
            producer.send(topic, orjson.dumps({"id": id_, "label": label}, option=orjson.OPT_NON_STR_KEYS))
            sent += 1

    try:
        for n, event in enumerate(tqdm(paced(events, rate), disable=not progress, unit="ev", desc=model)):
            if (stop is not None and stop.is_set()) or (limit is not None and n >= limit):
                break
            id_ = event.get("id") or uuid.uuid4().hex
            predict(api, model, id_, event["features"])
            predicted += 1
            heapq.heappush(due, (time.monotonic() + label_delay, id_, event["label"]))
            send_due(time.monotonic())
        while due and not (stop is not None and stop.is_set()):
            time.sleep(max(0.0, min(0.2, due[0][0] - time.monotonic())))
            send_due(time.monotonic())
        producer.flush()
    finally:
        producer.close(timeout=10)
    return predicted, sent
