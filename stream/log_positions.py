"""Places in the prediction log, one code per offset: what a checkpoint keeps of the
delayed-label join instead of the pending predictions' features.

A checkpoint stores, per partition, the first offset that matters and one byte per offset
from there (zlib-compressed: long runs of the same code cost almost nothing), so its size
follows the number of records in the join's window, never the size of their features.

>>> p = LogPositions()
>>> p.mark((0, 10), PENDING); p.mark((0, 12), JOINED)
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
    """Codes by (partition, offset); built by ``mark`` when writing, read back by ``take``."""

    def __init__(self, parts: dict[int, tuple[int, bytearray]] | None = None) -> None:
        self._parts: dict[int, tuple[int, bytearray]] = parts or {}
        self._marks: dict[int, list[tuple[int, int]]] = {}

    def mark(self, at: tuple[int, int], code: int) -> None:
        self._marks.setdefault(at[0], []).append((at[1], code))

    def merge(self, other: LogPositions) -> None:
        """Add the codes ``other`` still holds (what was not read back yet)."""
        for partition, (start, codes) in other._parts.items():
            marks = self._marks.setdefault(partition, [])
            marks.extend((start + i, code) for i, code in enumerate(codes) if code)

    def encode(self) -> dict[int, tuple[int, bytes]]:
        """Builtins only: partition -> (first offset, compressed codes from there)."""
        out = {}
        for partition, marks in self._marks.items():
            start = min(offset for offset, _ in marks)
            codes = bytearray(max(offset for offset, _ in marks) - start + 1)
            for offset, code in marks:
                codes[offset - start] = code
            out[partition] = (start, zlib.compress(bytes(codes), 1))
        return out

    @classmethod
    def decode(cls, encoded: dict[int, tuple[int, bytes]]) -> LogPositions:
        return cls({p: (start, bytearray(zlib.decompress(codes))) for p, (start, codes) in encoded.items()})

    def ranges(self) -> dict[int, tuple[int, int]]:
        """Partition -> [first, end) offsets to read again."""
        return {p: (start, start + len(codes)) for p, (start, codes) in self._parts.items() if codes}

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
        return any(any(codes) for _, codes in self._parts.values())
