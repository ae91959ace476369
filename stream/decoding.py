"""Decode one Kafka message value into River's (x, y), or say exactly why not."""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson
from pydantic import ValidationError

from model_store.event_schema import (
    MAX_FEATURES,
    MAX_STRING_LENGTH,
    Event,
    Label,
    Task,
    clean_features,
    label_fits,
)
from stream.errors import StreamError


class LabelOnly(Exception):
    """Not an error: a label for a prediction served earlier, to be joined by id."""

    def __init__(self, id_: str, label: Label) -> None:
        super().__init__(id_)
        self.id = id_
        self.label = label

    def __reduce__(self) -> tuple[type, tuple[str, Label]]:  # it crosses the fetcher's pipe
        return LabelOnly, (self.id, self.label)


class BadEvent(StreamError, ValueError):
    """The message cannot be learned from; ``reason`` goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"not JSON: {first['msg']}"
    fields = []
    for err in error.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        fields.append(f"field '{where}': {err['msg']}")
    return "schema: " + "; ".join(fields)


Decoded = tuple[dict, Label] | BadEvent | LabelOnly
"""One message decoded: (features, label), or why it is not learned as it is."""


def decode_many(values: Iterable[bytes | None], task: Task) -> list[Decoded]:
    """``decode`` for each value, in order, with the refusals as values (they pickle).

    Never raises: a value that breaks the decoder itself is refused with the error, or
    the fetcher would stop on it, be started again at the same record, and stop again."""
    decoded: list[Decoded] = []
    append = decoded.append
    for raw in values:
        try:
            append(decode(raw, task))
        except (BadEvent, LabelOnly) as exc:
            append(exc.with_traceback(None))
        except Exception as exc:
            append(BadEvent(f"cannot decode: {type(exc).__name__}: {exc}"))
    return decoded


def decode(raw: bytes | None, task: Task) -> tuple[dict, Label]:
    """The event's (features, label), or say exactly why not.

    Raises BadEvent for what cannot be learned, LabelOnly for a label-only event.
    Most events are plain (a flat object of numbers and short strings): orjson and
    a few type checks accept those at a fraction of the cost of the pydantic model;
    anything else, valid or not, goes through the model (``decode_validated``), so
    both paths accept the same events and refuse the rest with the model's reasons."""
    if not raw:
        raise BadEvent("empty message")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return decode_validated(raw, task)
    plain = _plain(doc, task)
    return plain if plain is not None else decode_validated(raw, task)


_NONE = type(None)
_SCALARS = frozenset({float, int, bool, str, _NONE})


def _plain(doc: object, task: Task) -> tuple[dict, Label] | None:
    """(features, label) when ``doc`` is an event the schema surely accepts, else None."""
    if type(doc) is not dict:
        return None
    features = doc.get("features")
    if type(features) is not dict or not features or len(features) > MAX_FEATURES:
        return None
    label = doc.get("label")
    kind = type(label)
    if kind is float:
        if not math.isfinite(label) or (task == "classification" and not label.is_integer()):
            return None
    elif kind is int:
        pass
    elif kind is bool or kind is str:
        if task != "classification" or (kind is str and len(label) > MAX_STRING_LENGTH):
            return None
    else:
        return None
    id_, ts = doc.get("id"), doc.get("ts")
    if id_ is not None and (type(id_) is not str or len(id_) > MAX_STRING_LENGTH):
        return None
    if ts is not None and not (
        (type(ts) is str and len(ts) <= MAX_STRING_LENGTH)
        or type(ts) is int
        or (type(ts) is float and math.isfinite(ts))
    ):
        return None
    # Type checks in C (set, map, max): orjson never yields NaN or infinities, so a
    # float needs no further check; strings and names only a length.
    values = features.values()
    kinds = set(map(type, values))
    if not kinds <= _SCALARS:
        return None
    if str in kinds and max(len(v) for v in values if type(v) is str) > MAX_STRING_LENGTH:
        return None
    if max(map(len, features)) > MAX_STRING_LENGTH:
        return None
    missing = _NONE in kinds
    return (clean_features(features) if missing else features), label


def decode_validated(raw: bytes, task: Task) -> tuple[dict, Label]:
    """Parse and validate with the Event model (pydantic's JSON parser), then check the label."""
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as exc:
        raise BadEvent(_describe(exc)) from None
    if not label_fits(task, event.label):
        raise BadEvent(f"label {event.label!r} ({type(event.label).__name__}) does not fit a {task} model")
    if event.features is None:
        raise LabelOnly(event.id, event.label)
    return clean_features(event.features), event.label
