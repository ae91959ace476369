"""The root of the serving side's own errors, and 422 bodies that never fail to serialise
(FastAPI's default echoes the input, which breaks on NaN and can be megabytes long)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response


class ApiError(Exception):
    """Raised on purpose by api (a body too large, features a model cannot use); never a bug."""


def _text(value: Any) -> Any:
    """Strings as UTF-8 can carry them: a lone surrogate (a valid JSON escape, e.g. in a
    feature name, but not UTF-8) is written out as its escape."""
    if not isinstance(value, str):
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value


def _echo(value: Any) -> Any:
    """Echo small scalar inputs only (an integer only as far as JSON writers take one: 64 bits)."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else None
    if isinstance(value, str) and len(value) <= 100:
        return _text(value)
    return None


def _msg(err: dict[str, Any]) -> Any:
    """The error's message; a body that is not JSON (``json_invalid``) says what is wrong with it,
    which FastAPI keeps apart in ``ctx``."""
    msg = err.get("msg")
    reason = (err.get("ctx") or {}).get("error")
    if err.get("type") == "json_invalid" and isinstance(reason, str):
        return f"{msg}: {reason}"
    return msg


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's format (``detail``: list of ``loc``/``msg``/``type``), made safe. A body that is
    not JSON, not UTF-8 or nested too deeply is one ``json_invalid`` item at its offset
    (api/json_body.py)."""
    detail = []
    for err in exc.errors():
        loc = [_text(part) for part in err.get("loc", ())]
        item = {"type": err.get("type"), "loc": loc, "msg": _text(_msg(err))}
        if "input" in err and _echo(err["input"]) is not None:
            item["input"] = _echo(err["input"])
        detail.append(item)
    body = orjson.dumps({"detail": detail}, default=str)
    return Response(body, status_code=422, media_type="application/json")
