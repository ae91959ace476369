"""Announces new versions, pins and resets to the manager: Redis pub/sub, plus polling
as a fallback for a missed message (or a Redis that was away)."""

from __future__ import annotations

import logging
import threading
import time

import redis

from api.manager import ModelManager

log = logging.getLogger(__name__)


class Watcher(threading.Thread):
    """A daemon thread: subscribe, load everything once, then react to messages and poll."""

    def __init__(self, manager: ModelManager, poll_interval: float) -> None:
        super().__init__(name="streamlearn-watcher", daemon=True)
        self.manager = manager
        self.poll_interval = poll_interval
        self.stop_event = threading.Event()
        self.first_pass = threading.Event()  # set once every model was tried once
        store = manager.store
        self.channels = {store.keys(name).channel: name for name in manager.specs}

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        delay = 0.2
        while not self.stop_event.is_set():
            try:
                self._listen()
                delay = 0.2
            except redis.RedisError as exc:
                self.manager.store_reachable = False
                self.first_pass.set()
                log.warning("watcher lost Redis (%s); retrying in %.1fs", exc, delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, 5.0)

    def _listen(self) -> None:
        pubsub = self.manager.store.client.pubsub(ignore_subscribe_messages=True)
        try:
            if self.channels:
                pubsub.subscribe(*self.channels)
            self.manager.refresh_all()  # after subscribing: nothing announced in between is missed
            self.first_pass.set()
            next_poll = time.monotonic() + self.poll_interval
            while not self.stop_event.is_set():
                message = pubsub.get_message(timeout=0.25) if self.channels else None
                if message and message.get("type") == "message":
                    channel = message["channel"].decode()
                    name = self.channels.get(channel)
                    if name:
                        self.manager.refresh(name)
                elif not self.channels:
                    self.stop_event.wait(0.25)
                if time.monotonic() >= next_poll:
                    self.manager.refresh_all()
                    if not self.manager.store_reachable:
                        raise redis.ConnectionError("store unreachable during poll")
                    next_poll = time.monotonic() + self.poll_interval
        finally:
            pubsub.close()
