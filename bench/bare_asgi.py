"""The /predict baseline: a bare ASGI app answering every request with one constant body.

It does what any ASGI app must (reads the request body, sends a start and a body message)
and nothing else, under the same uvicorn as ``streamlearn serve`` (uvloop, httptools, no
access log, one write per response: api/http_protocol.py), so ``/predict`` divided by it
is the share of the HTTP stack's ceiling that streamlearn keeps. The body is the size of
a Phishing prediction's answer.

Run: .venv/bin/python bench/bare_asgi.py --port 8001
"""

from __future__ import annotations

import argparse
from typing import Any

BODY = (
    b'{"model":"live","version":12,"id":"00000000000000000000000000000000",'
    b'"prediction":true,"proba":{"false":0.0123456789,"true":0.9876543211}}'
)
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-length", str(len(BODY)).encode()), (b"content-type", b"application/json")],
}
_BODY = {"type": "http.response.body", "body": BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with ``BODY``; take part in the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # the request body, as an app that uses it would read it
        message = await receive()
        more = message.get("more_body", False)
    await send(_START)
    await send(_BODY)


def main() -> None:
    import sys
    from pathlib import Path

    import uvicorn

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from api.http_protocol import CoalescingHttpToolsProtocol

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
