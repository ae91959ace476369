"""The fetcher's batches on the pipe to the trainer: marshal, with the feature names interned.

River keeps a model's state in dicts keyed by feature name and looks each event's names
up in them. A name that is the very object the model's dict holds matches by identity;
an equal copy is hashed and compared character by character. Pickle makes a new copy of
every name in every frame; marshal keeps a string's interning. So the fetcher interns the
names it sends (``Names``), and every event the trainer loads holds the trainer's one
interned copy of each name: the objects its model was filled with (and, after a restore,
the checkpoint's own, which ``model_store.snapshot.load_state`` interns). Under callgrind
that takes 2.6% off a linear model's learning thread (1-5% across hash seeds) and 0.5% off
a tree's; marshal also loads a batch about 15% faster than pickle (docs/benchmarks.md).

Refusals (``BadEvent``, ``LabelOnly``) are not marshallable: they travel beside the events
as (index, kind, args), their place in the events holding None, and are rebuilt on load.
Both ends run the same interpreter (the fetcher is the trainer's child), which marshal needs.

The other columns arrive packed: offsets and timestamps as arrays, keys and values as one
bytes object each (``Packed``). The trainer reads a record's value or key only to
dead-letter it, so loading a frame makes one object a column instead of one a record: a
Phishing event's raw value (about 220 bytes) was a bytes object, and its offset and
timestamp two ints, that the learning thread built and freed unread. Packed, loading costs
1.5 k instructions an event less, 0.9% of a linear model's learning thread
(docs/benchmarks.md).
"""

from __future__ import annotations

import marshal
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, NamedTuple, overload

from stream.decoding import BadEvent, LabelOnly

MAX_NAMES = 100_000
"""Names one fetcher remembers at most: a stream whose names never repeat (ids as names)
must not grow the fetcher without bound. Names past it are still interned, but each event
holding one pays the per-name pass again."""

_BAD, _LABEL = 0, 1


class Record(NamedTuple):
    """One Kafka record as the trainer needs it, built only off the hot path."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class Packed(Sequence):
    """A column of bytes-or-None (a batch's keys or values) held in one bytes object.

    ``ends[i]`` is where item i ends in ``data``, or ``~end`` (negative) when it is None,
    ``end`` being where the item before it ended. Items are sliced out when read."""

    __slots__ = ("_data", "_ends")

    def __init__(self, data: bytes, ends: array) -> None:
        self._data, self._ends = data, ends

    @classmethod
    def of(cls, items: Sequence[bytes | None]) -> Packed:
        if isinstance(items, Packed):
            return items
        if None not in items:
            return cls(b"".join(items), array("q", accumulate(map(len, items))))  # type: ignore[arg-type]
        if items.count(None) == len(items):  # the usual keys: none at all
            return cls(b"", array("q", [~0]) * len(items))
        ends, end = array("q"), 0
        for item in items:
            if item is None:
                ends.append(~end)
            else:
                end += len(item)
                ends.append(end)
        return cls(b"".join(item for item in items if item is not None), ends)

    def wire(self) -> tuple[bytes, bytes]:
        """What marshal carries: the data and the ends' bytes."""
        return self._data, self._ends.tobytes()

    @classmethod
    def from_wire(cls, data: bytes, ends: bytes) -> Packed:
        return cls(data, _array(ends))

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> bytes | None: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes | None]: ...
    def __getitem__(self, i: int | slice) -> bytes | None | list[bytes | None]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        ends = self._ends
        end = ends[i]  # IndexError past either end, as a list
        if end < 0:
            return None
        if i < 0:
            i += len(ends)
        start = ends[i - 1] if i else 0
        return self._data[start if start >= 0 else ~start : end]

    def __iter__(self) -> Iterator[bytes | None]:
        data, start = self._data, 0
        for end in self._ends:
            if end < 0:
                yield None
            else:
                yield data[start:end]
                start = end

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Packed({list(self)!r})"


@dataclass(slots=True)
class Batch:
    """Consecutive records of one partition, in columns (cheap to send and to walk). The
    fetcher fills lists; a loaded batch holds arrays and ``Packed`` columns, which read the
    same by index."""

    topic: str
    partition: int
    offsets: Sequence[int]
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    timestamps: Sequence[int]
    highwater: int | None
    events: list | None = None  # stream.decoding.Decoded per value, for an event topic

    def record(self, i: int) -> Record:
        return Record(self.offsets[i], self.keys[i], self.values[i], self.timestamps[i])


class Names:
    """The fetcher's side: interns every decoded event's feature names.

    orjson hands out the same key object for a name each time (its key cache), so interning
    that object in place the first time a name is seen is enough, and each later event costs
    one subset check in C. A name something else in this process interned first (an
    identifier or constant such as ``https`` or ``id``) cannot be interned in place: it
    travels as a copy, matched by characters as every name was before. Rebuilding each
    dict around it would cost the fetcher 1.2 us an event, more than the lookups it saves."""

    def __init__(self, max_names: int = MAX_NAMES) -> None:
        self.max_names = max_names
        self._known: set[str] = set()

    def intern(self, events: list) -> None:
        """Intern the names of the ``(features, label)`` events in place; refusals are left."""
        known, intern = self._known, sys.intern
        for event in events:
            if type(event) is tuple and not event[0].keys() <= known:
                x = event[0]
                for name in x:
                    intern(name)
                if len(known) < self.max_names:
                    known.update(x)


def dumps(batches: list[Batch]) -> bytes:
    """One poll's batches as a frame for ``loads``."""
    return marshal.dumps([_columns(batch) for batch in batches])


def dumps_error(reason: str) -> bytes:
    """Why the fetcher cannot go on, as a frame for ``loads``."""
    return marshal.dumps(reason)


def loads(frame: bytes) -> list[Batch] | str:
    """The batches of a frame, or the fetcher's reason for stopping (a str)."""
    item = marshal.loads(frame)
    if type(item) is str:
        return item
    return [_batch(*columns) for columns in item]


def _columns(batch: Batch) -> tuple:
    events, refusals = batch.events, []
    if events is not None:
        refusals = [(i, *_refusal(e)) for i, e in enumerate(events) if type(e) is not tuple]
        if refusals:
            events = list(events)
            for i, *_ in refusals:
                events[i] = None
    return (
        batch.topic,
        batch.partition,
        _ints(batch.offsets),
        Packed.of(batch.keys).wire(),
        Packed.of(batch.values).wire(),
        _ints(batch.timestamps),
        batch.highwater,
        events,
        refusals,
    )


def _ints(column: Sequence[int]) -> bytes:
    return (column if isinstance(column, array) else array("q", column)).tobytes()


def _array(raw: bytes) -> array:
    column = array("q")
    column.frombytes(raw)
    return column


def _refusal(event: Any) -> tuple[int, tuple]:
    if type(event) is LabelOnly:
        return _LABEL, (event.id, event.label)
    return _BAD, (event.reason,)


def _batch(
    topic: str,
    partition: int,
    offsets: bytes,
    keys: tuple[bytes, bytes],
    values: tuple[bytes, bytes],
    timestamps: bytes,
    highwater: int | None,
    events: list | None,
    refusals: list,
) -> Batch:
    for i, kind, args in refusals:
        events[i] = LabelOnly(*args) if kind == _LABEL else BadEvent(*args)
    return Batch(
        topic,
        partition,
        _array(offsets),
        Packed.from_wire(*keys),
        Packed.from_wire(*values),
        _array(timestamps),
        highwater,
        events,
    )
