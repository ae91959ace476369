"""HTTP bodies (pydantic), as they appear in the OpenAPI at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from model_store.event_schema import MAX_FEATURES, FeatureValue, ShortStr

MAX_BATCH = 1_000
"""Most instances in one batch request."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body accepted (413 beyond)."""
MAX_VERSION = 2**63 - 1
"""Largest version number: versions are counted by a Redis integer (64-bit)."""


class PredictRequest(BaseModel):
    """Features of one instance; null means missing (the feature is dropped)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"features": {"long_url": 1, "https": 0, "age_of_domain": 1}, "id": "req-1"}]
        },
    )

    id: ShortStr | None = Field(
        default=None, description="Your id for this prediction; send the label later with the same id"
    )
    features: dict[ShortStr, FeatureValue] = Field(max_length=MAX_FEATURES)


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"instances": [{"features": {"long_url": 1, "https": 0}}, {"features": {"long_url": 0}}]}
            ]
        },
    )

    instances: list[PredictRequest] = Field(min_length=1, max_length=MAX_BATCH)


class Prediction(BaseModel):
    id: str = Field(description="The request's id, or one generated for it")
    prediction: Any
    proba: dict[str, float] | None = None


class PredictResponse(Prediction):
    model: str
    version: int


class BatchResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction]


class ModelSummary(BaseModel):
    name: str
    task: str
    topic: str
    version: int | None = Field(description="Version served by this replica, null when none is loaded")
    pinned: bool
    loaded_at: float | None = None
    problem: str | None = Field(default=None, description="Why the model is not (or not newly) served")


class VersionInfo(BaseModel):
    version: int
    parent: int | None = Field(description="Version it was learned from (lineage); after a reset to N, N")
    created_at: datetime
    n_learned: int
    metrics: dict[str, float | None]
    rolling_metrics: dict[str, float | None]
    pinned: bool
    served: bool = Field(description="Served by this replica")
    promoted: bool = Field(default=False, description="The promotion gate's current pick")
    held: bool = Field(default=False, description="Held back by the promotion gate (recorded, not served)")
    hold_reason: str | None = None
    tag: str | None = None
    served_metrics: dict[str, Any] = Field(
        default_factory=dict, description="scores of served predictions whose labels arrived (delayed labels)"
    )


class ErrorBody(BaseModel):
    detail: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error responses a route can give."""
    described = {
        401: "missing or wrong API key",
        403: "endpoint disabled or key not allowed",
        404: "unknown model or version",
        413: "request body larger than the limit",
        503: "no version loaded yet, or the checkpoint store is unreachable; the reason is in detail",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes}


POINT_EVENTS: dict[str, Any] = {
    "description": "Server-sent events, one per new metric point; the stream does not end",
    "content": {
        "text/event-stream": {
            # One event (OpenAPI 3.2's itemSchema, as FastAPI writes it for its own event streams);
            # MetricPoint is in the components through GET /models/{name}/monitors.
            "itemSchema": {
                "type": "object",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": {"const": "point"},
                    "id": {"type": "string", "description": "The point's Redis stream id"},
                    "retry": {"type": "integer", "minimum": 0},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {
                            "type": "object",
                            "required": ["model", "id", "point"],
                            "properties": {
                                "model": {"type": "string"},
                                "id": {"type": "string"},
                                "point": {"$ref": "#/components/schemas/MetricPoint"},
                            },
                        },
                    },
                },
            }
        }
    },
}
"""OpenAPI of the metric point streams (api/routes/monitors.py): ``text/event-stream``."""


class Pointers(BaseModel):
    """What the store says replicas should serve: the pin, else the promoted version."""

    latest: int | None
    promoted: int | None
    pinned: int | None
    pin_reason: str | None = None
    reset_pending: int | None = Field(default=None, description="Version a requested reset goes back to")


class RollbackRequest(BaseModel):
    """pin: every replica serves ``version`` until unpinned. reset: the trainer continues learning
    from ``version`` (keeping its Kafka offsets); its next version has ``version`` as parent."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"version": 1, "mode": "pin", "reason": "v2 regressed on accuracy"}]},
    )

    version: int = Field(ge=1, le=MAX_VERSION)
    mode: Literal["pin", "reset"] = "pin"
    reason: str | None = Field(default=None, max_length=500, description="Recorded with the change")


class RollbackResponse(BaseModel):
    model: str
    version: int
    mode: Literal["pin", "reset"]
    detail: str
    served_here: int | None = Field(description="Version this replica serves after the change")


class UnpinResponse(BaseModel):
    model: str
    unpinned: int | None = Field(description="The version that was pinned, null if none was")
    served_here: int | None


class TagRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": "release-1.2"}]})

    label: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


class TagResponse(BaseModel):
    model: str
    version: int
    label: str | None


class PromoteBody(BaseModel):
    """Make a challenger the champion from the trainer's next version on (with its learned state)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"challenger": "tree", "reason": "better on the leaderboard"}]},
    )

    challenger: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    reason: str | None = Field(default=None, max_length=500, description="Recorded with the change")


class PromoteResponse(BaseModel):
    model: str
    challenger: str
    detail: str
