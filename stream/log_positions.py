"""Places in the prediction log, one code per offset: what a checkpoint keeps of the
delayed-label join instead of the pending predictions' features.

The joiner marks each logged prediction's code as it changes (pending, then joined or
expired, then forgotten), so a checkpoint only trims and compresses the bytes: per
partition, the first offset that matters and one byte per offset from there,
zlib-compressed (long runs of the same code cost almost nothing). Its size follows the
number of records in the join's window, never the size of their features.

>>> p = LogPositions()
>>> p.mark((0, 10), PENDING); p.mark((0, 12), JOINED); p.mark((0, 14), SKIP)
>>> q = LogPositions.decode(p.encode())
>>> q.ranges()
{0: (10, 13)}
>>> q.take((0, 12)), q.take((0, 11)), q.count(PENDING)
(2, 0, 1)
"""

from __future__ import annotations

import zlib

SKIP, PENDING, JOINED, SETTLED_EXPIRED = 0, 1, 2, 3
"""Per offset: nothing to restore (a duplicate, an unreadable or a forgotten record), a
prediction still waiting for its label, one whose label joined, one that expired."""


class LogPositions:
    """Codes by (partition, offset), kept live by ``mark``; ``encode`` for a checkpoint,
    ``take`` to read them back once after a restart."""

    def __init__(self, parts: dict[int, list] | None = None) -> None:
        self._parts: dict[int, list] = parts or {}  # partition -> [first offset, bytearray]

    def mark(self, at: tuple[int, int], code: int) -> None:
        partition, offset = at
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = [offset, bytearray()]
        start, codes = part
        if offset < start:  # before the window (read back out of order): widen it
            codes[0:0] = bytes(start - offset)
            part[0] = start = offset
        i = offset - start
        if i >= len(codes):
            codes.extend(bytes(i - len(codes) + 1))
        codes[i] = code

    def merge(self, other: LogPositions) -> None:
        """Mark the codes ``other`` still holds (what was not read back yet)."""
        for partition, (start, codes) in other._parts.items():
            for i, code in enumerate(codes):
                if code:
                    self.mark((partition, start + i), code)

    def encode(self) -> dict[int, tuple[int, bytes]]:
        """Builtins only: partition -> (first offset, compressed codes from there). Trims
        the forgotten offsets at the front, so the window moves on with the log."""
        out = {}
        for partition, part in self._parts.items():
            start, codes = part
            lead = len(codes) - len(codes.lstrip(b"\0"))
            if lead:
                del codes[:lead]
                part[0] = start = start + lead
            used = len(codes.rstrip(b"\0"))
            if used:
                out[partition] = (start, zlib.compress(bytes(codes[:used]), 1))
        return out

    @classmethod
    def decode(cls, encoded: dict[int, tuple[int, bytes]]) -> LogPositions:
        return cls({p: [start, bytearray(zlib.decompress(codes))] for p, (start, codes) in encoded.items()})

    def copy(self) -> LogPositions:
        return LogPositions({p: [start, bytearray(codes)] for p, (start, codes) in self._parts.items()})

    def ranges(self) -> dict[int, tuple[int, int]]:
        """Partition -> [first, end) offsets to read again."""
        parts = self._parts.items()
        return {p: (start, start + len(codes)) for p, (start, codes) in parts if codes.count(0) < len(codes)}

    def take(self, at: tuple[int, int]) -> int:
        """The code at ``at``, once: a record read twice (a retried read) restores nothing twice."""
        part = self._parts.get(at[0])
        if part is None:
            return SKIP
        start, codes = part
        i = at[1] - start
        if not 0 <= i < len(codes):
            return SKIP
        code, codes[i] = codes[i], SKIP
        return code

    def count(self, code: int) -> int:
        return sum(codes.count(code) for _, codes in self._parts.values())

    def __bool__(self) -> bool:
        return any(codes.count(0) < len(codes) for _, codes in self._parts.values())
