"""Decode one Kafka message value into River's (x, y), or say exactly why not."""

from __future__ import annotations

from pydantic import ValidationError

from model_store.events import Event, Label, Task, clean_features, label_fits


class LabelOnly(Exception):
    """Not an error: a label for a prediction served earlier, to be joined by id."""

    def __init__(self, id_: str, label: Label) -> None:
        super().__init__(id_)
        self.id = id_
        self.label = label


class BadEvent(ValueError):
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


def decode(raw: bytes | None, task: Task) -> tuple[dict, Label]:
    """Parse and validate in one pass (pydantic's JSON parser), then check the label's type.

    Raises BadEvent for what cannot be learned, LabelOnly for a label-only event."""
    if not raw:
        raise BadEvent("empty message")
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as exc:
        raise BadEvent(_describe(exc)) from None
    if not label_fits(task, event.label):
        raise BadEvent(f"label {event.label!r} ({type(event.label).__name__}) does not fit a {task} model")
    if event.features is None:
        raise LabelOnly(event.id, event.label)  # type: ignore[arg-type]
    return clean_features(event.features), event.label
