"""uvicorn's httptools protocol, with each response's writes sent to the socket as one.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body when the app sends ``http.response.body``: two
``send`` calls on a TCP_NODELAY socket, so two segments, and a client that has read the
first and gone back to waiting is woken a second time for the second. On this machine
kind that second wake-up was a third of a prediction's CPU (docs/benchmarks.md, "One
write per response"). Here the writes one step of the event loop makes to a connection
are held and written together at the start of the next one: an answer sent in one go
leaves in one write, and a response that sends its headers and then waits (an event
stream) still has them on the wire one loop iteration later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes within one loop iteration reach the real one as one write.

    Everything but ``write`` and ``close`` is the real transport's (``__getattr__``)."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = [data]
            self._loop.call_soon(self.flush)
        else:
            self._held.append(data)

    def flush(self) -> None:
        """Write what is held now (the loop calls it; ``close`` does too)."""
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=...)``: httptools parsing, one write per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(CoalescingTransport(transport, self.loop))
