"""The trainer's start-up objects leave the cyclic GC; what is made later stays in it."""

from __future__ import annotations

import gc
import weakref

from stream.trainer import freeze_start_up_objects


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_start_up_objects_are_frozen_and_later_cycles_still_collected():
    try:
        before = Node()
        freeze_start_up_objects()
        assert gc.get_freeze_count() > 0
        assert not any(o is before for o in gc.get_objects())  # frozen: no longer scanned

        a, b = Node(), Node()  # a cycle made after start-up, as a model's objects may be
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
