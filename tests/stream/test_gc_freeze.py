"""The trainer's start-up objects leave the cyclic GC; what is made later stays in it, and
young collections come less often."""

from __future__ import annotations

import gc
import weakref

from stream.trainer import YOUNG_COLLECTION_EVERY, collect_young_less_often, freeze_start_up_objects


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


def test_young_collections_come_less_often_and_a_higher_setting_is_kept():
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        collect_young_less_often()
        assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, 10, 10)
        gc.set_threshold(YOUNG_COLLECTION_EVERY * 5, 3, 4)  # set higher before, by a sitecustomize say
        collect_young_less_often()
        assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY * 5, 3, 4)
    finally:
        gc.set_threshold(*saved)
