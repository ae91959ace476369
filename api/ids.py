"""Ids of predictions whose request brought none: unique across replicas and restarts.

A random prefix drawn once per process (80 bits from ``secrets``) followed by a counter, 32
hex characters like the ``uuid4().hex`` it replaces, at a fraction of its cost: uuid4 reads
the OS's random source for every id. Two processes share a prefix with probability about
n**2 / 2**81 for n processes ever started, so ids of different replicas, workers and restarts
do not collide; within a process the counter never repeats. A forked child draws a prefix of
its own, so a fork after start-up cannot hand out its parent's ids.
"""

from __future__ import annotations

import itertools
import os
import secrets
import weakref

_COUNTER_DIGITS = 12  # 2**48 ids per prefix; then a new prefix is drawn


class IdSource:
    """``next_id()`` gives a new id; one source per replica (api/responder.py holds it)."""

    def __init__(self) -> None:
        self._reseed()
        own = weakref.WeakMethod(self._reseed)
        os.register_at_fork(after_in_child=lambda: (method := own()) and method())

    def _reseed(self) -> None:
        self._prefix = secrets.token_hex(10)
        self._counter = itertools.count()
        self._limit = 16**_COUNTER_DIGITS

    def next_id(self) -> str:
        n = next(self._counter)  # atomic under the GIL: threads never get the same number
        if n >= self._limit:
            self._reseed()
            return self.next_id()
        return f"{self._prefix}{n:012x}"
