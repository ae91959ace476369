"""Waits that double between attempts: how the trainer waits for Redis, Kafka or its fetcher."""

from __future__ import annotations

import threading


class Backoff:
    """``wait`` sleeps ``first`` seconds, then twice as long each time up to ``longest``,
    returning early when ``stop`` is set; ``reset`` after a success starts over.

    >>> b = Backoff(first=0.5, longest=2.0)
    >>> [b.next() for _ in range(4)]
    [0.5, 1.0, 2.0, 2.0]
    >>> b.reset(); b.next()
    0.5
    """

    def __init__(self, first: float = 0.5, longest: float = 10.0) -> None:
        self.first, self.longest = first, longest
        self.delay = first

    def next(self) -> float:
        """The coming wait, and the one after it doubled (at most ``longest``)."""
        delay, self.delay = self.delay, min(self.delay * 2, self.longest)
        return delay

    def wait(self, stop: threading.Event, delay: float | None = None) -> None:
        stop.wait(self.next() if delay is None else delay)

    def reset(self) -> None:
        self.delay = self.first
