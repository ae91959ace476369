"""The labeled event of SPEC section 3: the Kafka message value every producer writes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FeatureValue = float | int | bool | str | None
Label = bool | int | float | str
Task = Literal["classification", "regression"]


class Event(BaseModel):
    """One labeled observation. Unknown top-level fields are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str | None = None
    ts: str | float | None = None
    features: dict[str, FeatureValue] = Field(min_length=1)
    label: Label


def label_fits(task: Task, label: Label) -> bool:
    """A classifier takes bool, int or string classes; a regressor a number that is not a bool."""
    if task == "classification":
        return not isinstance(label, float) or label.is_integer()
    return isinstance(label, int | float) and not isinstance(label, bool)


def clean_features(features: dict[str, FeatureValue]) -> dict[str, float | int | bool | str]:
    """Drop null features: River treats an absent feature as missing, which null means."""
    if None in features.values():
        return {k: v for k, v in features.items() if v is not None}
    return features  # type: ignore[return-value]
