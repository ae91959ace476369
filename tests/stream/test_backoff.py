"""The trainer's one backoff: doubling waits, cut short by the stop flag."""

from __future__ import annotations

import doctest
import threading

import stream.backoff
from stream.backoff import Backoff


def test_its_docstring_example_holds():
    assert doctest.testmod(stream.backoff).failed == 0


def test_a_set_stop_flag_ends_the_wait_and_the_delay_still_doubles():
    stop = threading.Event()
    stop.set()
    backoff = Backoff(first=30.0, longest=60.0)
    backoff.wait(stop)  # returns at once: the flag is set
    assert backoff.delay == 60.0
