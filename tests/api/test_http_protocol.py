"""One write per response (api/http_protocol.py): the writes of one loop iteration reach
the socket together, later writes are not held back, and closing sends what is held."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from api.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport
from stream.local_services import free_port
from tests.helpers.processes import await_until


async def _callbacks_scheduled_so_far() -> None:
    """Return once every callback scheduled before this call has run (the loop runs them in order)."""
    ran = asyncio.Event()
    asyncio.get_running_loop().call_soon(ran.set)
    await ran.wait()


class RecordingTransport:
    """The real transport's side of it: what was written, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.extra = {"peername": ("127.0.0.1", 1)}

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.extra.get(name, default)


def test_writes_of_one_iteration_leave_as_one() -> None:
    asyncio.run(_test_writes_of_one_iteration_leave_as_one())


async def _test_writes_of_one_iteration_leave_as_one() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert real.writes == []  # held until the loop's next iteration
    await await_until(lambda: real.writes, 10, "the held writes")
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_a_response_that_waits_after_its_headers_still_sends_them() -> None:
    asyncio.run(_test_a_response_that_waits_after_its_headers_still_sends_them())


async def _test_a_response_that_waits_after_its_headers_still_sends_them() -> None:
    """An event stream: headers now, its first event whenever it comes."""
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"headers")
    await await_until(lambda: real.writes, 10, "the headers")
    assert real.writes == [b"headers"]
    transport.write(b"data: 1\n\n")
    await await_until(lambda: len(real.writes) == 2, 10, "the event")
    assert real.writes == [b"headers", b"data: 1\n\n"]


def test_close_sends_what_is_held_first_and_nothing_after() -> None:
    asyncio.run(_test_close_sends_what_is_held_first_and_nothing_after())


async def _test_close_sends_what_is_held_first_and_nothing_after() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"last")
    transport.close()
    assert real.writes == [b"last"] and real.closed and transport.is_closing()
    transport.write(b"too late")
    await _callbacks_scheduled_so_far()  # the flush that write scheduled has run
    assert real.writes == [b"last"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real one's


async def _app(scope: dict, receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    body = b'{"ok":true}'
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"11")]})
    await send({"type": "http.response.body", "body": body})


class Counting:
    """The socket's transport, counting the writes that reach it."""

    writes = 0

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def write(self, data: bytes) -> None:
        Counting.writes += 1
        self.transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)


class CountedProtocol(CoalescingHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(Counting(transport))


def test_a_real_server_answers_keep_alive_requests_in_one_write_each() -> None:
    """uvicorn itself would write each answer's headers and body apart: six writes."""
    asyncio.run(_against_a_real_server())


async def _against_a_real_server() -> None:
    port = free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=CountedProtocol, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    await await_until(lambda: server.started, 10, "uvicorn to start")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    try:
        for _ in range(3):
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 11" in head
            assert await reader.readexactly(11) == b'{"ok":true}'
        assert Counting.writes == 3
    finally:
        writer.close()
        server.should_exit = True
        await serving
