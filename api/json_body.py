"""Request bodies read as JSON in UTF-8, and an unreadable one refused as a documented 422.

FastAPI turns a ``json.JSONDecodeError`` into its 422 (``json_invalid``, at the offset), but any
other failure of ``Request.json()`` into an undocumented ``400 There was an error parsing the
body``: bytes that are not UTF-8 and nesting deeper than the parser's recursion limit. Here both
are JSON decode errors too, so every route with a body answers them with the same 422 naming
the problem (api/errors.py); the predict fast path hands such bodies to its route. A UTF-8 byte
order mark is ignored, as RFC 8259 allows; UTF-16 and UTF-32 are not UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class JSONBodyRequest(Request):
    """``json()`` parses the body as UTF-8 JSON; every failure is a ``json.JSONDecodeError``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError(
                    f"body is not UTF-8 ({exc.reason} at byte {exc.start})", "", exc.start
                ) from exc
            try:
                self._json = json.loads(text)
            except RecursionError as exc:
                raise json.JSONDecodeError("body is nested too deeply", text, 0) from exc
        return self._json


class JSONBodyRoute(APIRoute):
    """Route class of every router: its handler reads the request as a ``JSONBodyRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(JSONBodyRequest(request.scope, request.receive))

        return handle
