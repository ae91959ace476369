"""New metric points for server-sent events: one reader of the models' Redis streams,
fanned out to every listener through a bounded queue of its own (a listener that
falls behind is dropped, never the reader). It reads only while someone listens.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import redis

from model_store.store import CheckpointStore

log = logging.getLogger(__name__)

Message = tuple[str, str, dict[str, Any]]  # model, stream id, point


class Listener:
    """One SSE connection's queue; ``dropped`` once it fell too far behind."""

    def __init__(self, model: str | None, size: int) -> None:
        self.model = model
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=size)
        self.dropped = False


class PointFeed:
    """Reads every model's metric stream once and hands each new point to the listeners."""

    def __init__(self, store: CheckpointStore, models: list[str], queue_size: int = 1000) -> None:
        self.store = store
        self.models = models
        self.queue_size = queue_size
        self._listeners: set[Listener] = set()

    def subscribe(self, model: str | None = None) -> Listener:
        """Points of ``model`` (every model when None) from now on."""
        listener = Listener(model, self.queue_size)
        self._listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def _publish(self, message: Message) -> None:
        for listener in list(self._listeners):
            if listener.model is not None and listener.model != message[0]:
                continue
            try:
                listener.queue.put_nowait(message)
            except asyncio.QueueFull:
                listener.dropped = True
                self._listeners.discard(listener)

    async def run(self, closing: threading.Event) -> None:
        """Until ``closing`` is set: wait up to a second for new points, hand them out."""
        after: dict[str, str] | None = None
        while not closing.is_set():
            if not self._listeners:
                after = None  # nobody listens: start from the newest point when someone does
                await asyncio.sleep(0.25)
                continue
            try:
                if after is None:
                    after = await asyncio.to_thread(
                        lambda: {m: self.store.last_metric_id(m) for m in self.models}
                    )
                points = await asyncio.to_thread(self.store.metric_points_after, after, 1000)
            except redis.RedisError as exc:
                log.warning("metric feed cannot read Redis (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for model, sid, point in points:
                after[model] = sid
                self._publish((model, sid, point))
