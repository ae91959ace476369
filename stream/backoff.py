"""Waits that double between attempts: how the training side waits for Redis, Kafka, its
fetcher or a crashed worker, so every retry loop paces itself the same way."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


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


def retry(
    stop: threading.Event,
    attempt: Callable[[], T],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    what: Callable[[BaseException], str],
    backoff: Backoff | None = None,
) -> T | None:
    """Call ``attempt`` until it returns, as long as it takes: after each of ``errors`` say
    ``what(error)`` and wait longer. None once ``stop`` is set (so ``attempt`` should not
    return None itself); any other error is raised at once.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise OSError("not yet")
    ...     return len(calls)
    >>> retry(threading.Event(), flaky, OSError, str, Backoff(first=0.0, longest=0.0))
    3
    """
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            return attempt()
        except errors as exc:
            delay = backoff.next()
            log.warning("%s; retrying in %.1fs", what(exc), delay)
            backoff.wait(stop, delay)
    return None
