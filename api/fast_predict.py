"""``POST /models/{name}/predict`` answered in pure ASGI, in front of FastAPI and its middleware.

FastAPI spends most of a prediction's time routing, solving dependencies and validating
the body, far more than the model takes. This path answers the common case directly: a
model that is served, the predict key when one is set, and a JSON object of the documented
shape, checked field by field on what orjson parsed. Every other request goes on to the
route in api/routes/predict.py with the body replayed, so each error (404, 503, 401, the
422 naming the field) still comes from the route, FastAPI and pydantic, unchanged. An answer
is the route's answer: one snapshot read once, the same prediction function, and the same
log record, monitor observation and orjson body (api/responder.py). It sits in front of
FastAPI's own entry and middleware stack (Starlette's error middleware, the body size limit),
which the answered requests do not need: an exception escaping here is uvicorn's 500, the
same answer Starlette's error middleware gives.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import orjson
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import key_accepted
from api.manager import ModelManager
from api.predicting import UnusableFeatures, predict_clean
from api.responder import Responder
from model_store.event_schema import MAX_FEATURES, MAX_STRING_LENGTH, clean_features

_FIELDS = frozenset(("features", "id"))
# orjson parses an integer beyond 64 bits as a float, where the route (json + pydantic) keeps
# an int: floats this large go the route's way, so their value is never changed.
_LARGEST_FLOAT = float(2**63)
_SMALLEST_FLOAT = -_LARGEST_FLOAT
_JSON = b"application/json"


def parse_body(body: bytes) -> tuple[dict[str, Any], str | None, bool] | None:
    """``(features, id, has_null)`` when ``body`` is JSON that ``PredictRequest`` takes
    unchanged: only ``features`` (at most MAX_FEATURES) and ``id``, keys and strings of at
    most MAX_STRING_LENGTH characters, values finite numbers, booleans, strings or null
    (``has_null``: at least one is). None when it might not be: then the route decides, and
    pydantic names the field."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:  # also NaN, Infinity, 1e999 and lone surrogates
        return None
    if type(obj) is not dict or not _FIELDS.issuperset(obj):
        return None
    features = obj.get("features")
    id_ = obj.get("id")
    if type(features) is not dict or len(features) > MAX_FEATURES:
        return None
    if id_ is not None and (type(id_) is not str or len(id_) > MAX_STRING_LENGTH):
        return None
    has_null = False
    for key, value in features.items():
        if len(key) > MAX_STRING_LENGTH:
            return None
        kind = type(value)
        if kind is float:
            if not _SMALLEST_FLOAT < value < _LARGEST_FLOAT:  # false for NaN too
                return None
        elif kind is str:
            if len(value) > MAX_STRING_LENGTH:
                return None
        elif kind is not int and kind is not bool:
            if value is not None:
                return None
            has_null = True
    return features, id_, has_null


def _is_json(content_type: bytes | None) -> bool:
    """A JSON media type, parameters allowed (the caller checks the common exact one first)."""
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == _JSON


def _presented_key(api_key: bytes | None, authorization: bytes | None) -> str | None:
    """The key as ``require_predict_key`` reads it: ``X-API-Key``, else a Bearer token."""
    if api_key:
        return api_key.decode("latin-1")
    if authorization:
        scheme, credentials = get_authorization_scheme_param(authorization.decode("latin-1"))
        if scheme.lower() == "bearer" and credentials:
            return credentials
    return None


class FastPredict:
    """Pure ASGI: answers well-formed single predictions, hands on the rest.

    It runs in front of the whole middleware stack (api/main.py), so it enforces the body size
    limit itself: a body larger than ``max_bytes``, declared or counted, goes on to the app,
    whose size limit answers the 413."""

    def __init__(
        self,
        app: ASGIApp,
        manager: ModelManager,
        responder: Responder,
        predict_key: SecretStr | None,
        max_bytes: int,
    ) -> None:
        self.app = app
        self.manager = manager
        self.responder = responder
        self.predict_key = predict_key
        self.max_bytes = max_bytes
        # the predict path of every configured model: one lookup finds the name
        self._paths = {f"/models/{name}/predict": name for name in manager.specs}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        name = self._paths.get(scope["path"])
        served = self.manager.get(name) if name is not None else None  # the snapshot, read once
        if served is None:  # another route, an unknown model, or nothing served yet
            await self.app(scope, receive, send)
            return
        content_type = api_key = authorization = None
        declared_size = 0
        for key, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
            if key == b"content-type":
                content_type = value if content_type is None else content_type
            elif key == b"content-length":
                try:
                    size = int(value)
                except ValueError:  # the size limit's business
                    size = self.max_bytes + 1
                if size > declared_size:
                    declared_size = size
            elif key == b"x-api-key":
                api_key = value if api_key is None else api_key
            elif key == b"authorization":
                authorization = value if authorization is None else authorization
        if (
            declared_size > self.max_bytes
            or (content_type != _JSON and not _is_json(content_type))
            or (
                self.predict_key is not None
                and not key_accepted(_presented_key(api_key, authorization), self.predict_key)
            )
        ):
            await self.app(scope, receive, send)
            return

        received = [await receive()]
        message = received[0]
        if message["type"] != "http.request":  # the client left: the route sees it too
            await self._hand_on(scope, receive, send, received)
            return
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):  # a body in pieces: chunked, or a large one
            chunks, size = [body], len(body)
            while message.get("more_body", False) and size <= self.max_bytes:
                message = await receive()
                received.append(message)
                if message["type"] != "http.request":
                    await self._hand_on(scope, receive, send, received)
                    return
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
            body = b"".join(chunks)
        # A chunked body is counted here (a declared size was checked above); the size limit
        # counts it again and answers its 413.
        parsed = parse_body(body) if len(body) <= self.max_bytes else None
        if parsed is None:
            await self._hand_on(scope, receive, send, received)
            return
        features, id_, has_null = parsed
        started = time.perf_counter()
        try:
            result = predict_clean(
                served.model, served.meta.task, clean_features(features) if has_null else features
            )
        except UnusableFeatures:  # the route's 422 names the model, version and reason
            await self._hand_on(scope, receive, send, received)
            return
        answer = self.responder.answer(served, features, id_, result, started)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", b"%d" % len(answer)),
                    (b"content-type", _JSON),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _hand_on(self, scope: Scope, receive: Receive, send: Send, received: list[Message]) -> None:
        """The rest of the app, given the messages already read first."""
        replay = deque(received)

        async def receive_again() -> Message:
            return replay.popleft() if replay else await receive()

        await self.app(scope, receive_again, send)
