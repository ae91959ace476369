"""The labeled event (README, "The event"): the Kafka message value every producer writes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_FEATURES = 10_000
"""Most features one event or one prediction request may carry."""
MAX_STRING_LENGTH = 1_024
"""Longest string feature value, label or id."""

# Documented rule: NaN and infinities are refused (JSON has no such numbers; a
# producer that writes them has a bug), so models never learn from or predict on them.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
ShortStr = Annotated[str, StringConstraints(max_length=MAX_STRING_LENGTH)]
FeatureValue = FiniteFloat | int | bool | ShortStr | None
Label = bool | int | FiniteFloat | ShortStr
Task = Literal["classification", "regression"]


class Event(BaseModel):
    """One labeled observation, or a label-only event for a prediction served earlier.

    A label-only event (``features`` omitted) needs the ``id`` its prediction was
    served with; the trainer joins it with the logged prediction. Unknown
    top-level fields are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: ShortStr | None = None
    ts: ShortStr | FiniteFloat | None = None
    features: dict[ShortStr, FeatureValue] | None = Field(default=None, min_length=1, max_length=MAX_FEATURES)
    label: Label

    @model_validator(mode="after")
    def _label_only_needs_an_id(self) -> Event:
        if self.features is None and not self.id:
            raise ValueError("'features' is required, unless this is a label-only event with an 'id'")
        return self


def label_fits(task: Task, label: Label) -> bool:
    """A classifier takes bool, int or string classes; a regressor a number that is not a bool."""
    if task == "classification":
        return not isinstance(label, float) or label.is_integer()
    return isinstance(label, int | float) and not isinstance(label, bool)


def clean_features(features: dict[str, FeatureValue]) -> dict[str, float | int | bool | str]:
    """Drop null features: River treats an absent feature as missing, which null means."""
    if None in features.values():
        return {k: v for k, v in features.items() if v is not None}
    return features
