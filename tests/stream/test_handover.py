"""The fetcher's frames to the trainer (stream/handover.py): every field and refusal arrives,
and a feature name arrives as the same interned object in every frame."""

from __future__ import annotations

import sys

import orjson
import pytest

from stream import handover
from stream.decoding import BadEvent, LabelOnly, decode_many
from stream.handover import Batch, Packed, Record


def fresh(text: str) -> str:
    """An equal string that is a new object, as a decoder makes one. (The names here are not
    identifiers, so the compiler has not interned their literals.)"""
    return "".join(list(text))


def a_batch(events: list, offsets: list[int] | None = None) -> Batch:
    offsets = offsets or list(range(len(events)))
    values = [f"v{i}".encode() for i in offsets]
    keys = [b"k" if i % 2 else None for i in range(len(offsets))]
    return Batch("events", 3, offsets, keys, values, [7] * len(offsets), 99, events)


def test_every_field_and_every_refusal_survives_a_frame():
    events = [
        ({"f1": 1.5, "f2": "x", "f3": None}, True),
        BadEvent("schema: field 'label'"),
        LabelOnly("p-1", 2),
    ]
    batch = a_batch(events, [10, 11, 12])
    (got,) = handover.loads(handover.dumps([batch]))
    columns = (got.offsets, got.keys, got.values, got.timestamps)
    assert (got.topic, got.partition, *map(list, columns), got.highwater) == (
        "events",
        3,
        [10, 11, 12],
        [None, b"k", None],
        [b"v10", b"v11", b"v12"],
        [7, 7, 7],
        99,
    )
    assert got.record(1) == Record(11, b"k", b"v11", 7) and type(got.record(1).offset) is int
    decoded, bad, label = got.events
    assert decoded == events[0]
    assert type(bad) is BadEvent and bad.reason == "schema: field 'label'"
    assert type(label) is LabelOnly and (label.id, label.label) == ("p-1", 2)
    assert batch.events[1] is events[1]  # the sender's batch is left as it was
    raw = Batch("log", 0, [1], [None], [b"raw"], [5], None)
    (log,) = handover.loads(handover.dumps([raw]))
    assert (log.topic, list(log.offsets), log.keys, log.values, list(log.timestamps), log.events) == (
        "log",
        [1],
        [None],
        [b"raw"],
        [5],
        None,
    )


def test_a_packed_column_reads_as_the_list_it_was_made_of():
    for items in (
        [b"ab", None, b"", b"cde", None],
        [None, None, None],
        [b"x", b"yz"],
        [None, b"only"],
        [],
    ):
        packed = Packed.from_wire(*Packed.of(items).wire())
        assert len(packed) == len(items)
        assert list(packed) == items
        assert [packed[i] for i in range(len(items))] == items
        assert [packed[-i] for i in range(1, len(items) + 1)] == [items[-i] for i in range(1, len(items) + 1)]
        assert packed[1:3] == items[1:3]
        assert packed == items and packed != [*items, b"more"]
        with pytest.raises(IndexError):
            packed[len(items)]
    assert Packed.of([b"a", None])[1] is None and Packed.of([b"a", None])[0] == b"a"


def test_a_reason_to_stop_arrives_as_text():
    assert (
        handover.loads(handover.dumps_error("cannot consume from Kafka: down"))
        == "cannot consume from Kafka: down"
    )


def test_names_arrive_as_one_interned_object_in_every_frame():
    names = handover.Names()
    frames = []
    for value in (1.0, 2.0):  # decoded by orjson, as the fetcher does: one cached key object a name
        raw = orjson.dumps({"features": {"streamlearn-handover name 1": value, "other name": 0}, "label": 1})
        events = decode_many([raw], "classification")
        names.intern(events)
        frames.append(handover.loads(handover.dumps([a_batch(events)])))
    first, second = (list(batches[0].events[0][0]) for batches in frames)
    assert first[0] is second[0] is sys.intern(fresh("streamlearn-handover name 1"))
    assert first[1] is second[1]


def test_a_name_interned_before_arrives_as_an_equal_copy():
    taken = sys.intern(fresh("streamlearn_handover_taken"))  # e.g. an identifier of the fetcher's code
    free = fresh("streamlearn-handover free")
    names = handover.Names()
    events = [({fresh(taken): 1, free: 2}, True), ({fresh(taken): 3, free: 4}, True)]
    names.intern(events)
    (batch,) = handover.loads(handover.dumps([a_batch(events)]))
    assert [x for x, _ in batch.events] == [{taken: 1, free: 2}, {taken: 3, free: 4}]
    assert [list(x) for x, _ in batch.events] == [[taken, free]] * 2  # order kept
    first, second = (list(x) for x, _ in batch.events)
    assert first[1] is second[1] is sys.intern(fresh(free))


def test_decoded_events_keep_their_order_and_values():
    values = [b'{"features": {"a": 1, "b": 2.5}, "label": "spam"}', b"{bad", b'{"id": "q", "label": 1}']
    events = decode_many(values, "classification")
    handover.Names().intern(events)
    (batch,) = handover.loads(handover.dumps([a_batch(events)]))
    assert batch.events[0] == ({"a": 1, "b": 2.5}, "spam")
    assert type(batch.events[1]) is BadEvent and type(batch.events[2]) is LabelOnly


def test_the_names_remembered_are_bounded():
    names = handover.Names(max_names=2)
    events = [({fresh(f"streamlearn-bounded {i}"): i}, True) for i in range(5)]
    names.intern(events)
    assert len(names._known) <= 2
    assert [x for x, _ in events] == [{f"streamlearn-bounded {i}": i} for i in range(5)]
