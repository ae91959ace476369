"""The body size limit as pure ASGI (no services)."""

from __future__ import annotations

import asyncio

import orjson

from api.limits import BodySizeLimit


def run(headers: list[tuple[bytes, bytes]], parts: list[bytes], max_bytes: int = 100):
    """One request through the limit to an app that reads the whole body; what was sent, and
    whether the app was given the server's own ``receive``."""
    seen: dict = {}

    async def app(scope, receive, send):
        seen["receive"] = receive
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    incoming = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)
    ]

    async def receive():
        return incoming.pop(0)

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodySizeLimit(app, max_bytes=max_bytes)(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), seen.get("receive") is receive


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    status, body, _ = run([(b"content-length", b"101")], [b"x" * 101])
    assert status == 413 and "100 bytes" in orjson.loads(body)["detail"]


def test_a_declared_length_within_the_limit_passes_untouched():
    assert run([(b"content-length", b"100")], [b"x" * 100]) == (200, b"x" * 100, True)
    assert run([], [b""]) == (200, b"", True)  # no body at all


def test_a_chunked_body_is_counted_while_it_streams():
    chunked = [(b"transfer-encoding", b"chunked")]
    assert run(chunked, [b"x" * 60, b"x" * 40])[:2] == (200, b"x" * 100)
    status, body, _ = run(chunked, [b"x" * 60, b"x" * 41])
    assert status == 413 and "100 bytes" in orjson.loads(body)["detail"]
    status, _, wrapped = run([(b"content-length", b"oops")], [b"x" * 101])
    assert status == 413 and not wrapped
