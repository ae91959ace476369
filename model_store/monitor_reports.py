"""What the trainer's monitors report: the metric point it appends to the model's capped
Redis stream every second, and the monitor summary it stores with every checkpoint.

The trainer writes these, the API and the dashboard read them, so the shape lives here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["ok", "warning", "alert"]
STATE_ORDER: dict[str, int] = {"ok": 0, "warning": 1, "alert": 2}


def worst(*states: str | None) -> State:
    """The most severe of some monitor states (ok < warning < alert)."""
    known = [s for s in states if s in STATE_ORDER]
    return max(known, key=STATE_ORDER.__getitem__, default="ok")


class Detection(BaseModel):
    """One concept drift detection: when, after how many events, and which version was newest."""

    n: int = Field(description="Events learned when the drift was detected")
    time: float = Field(description="Unix time of the detection")
    version: int | None = Field(default=None, description="Newest published version at that moment")


class ConceptDriftState(BaseModel):
    """A River drift detector fed by the prequential error."""

    model_config = ConfigDict(extra="ignore")

    detector: str
    state: State = Field(
        description="alert for hold_events events after a detection; warning in a detector's warning zone"
    )
    detections_total: int = 0
    improvements: int = Field(
        default=0, description="Changes the detector found where the error fell; not alarms"
    )
    detections: list[Detection] = Field(default_factory=list, description="Most recent last")


class ErrorRateState(BaseModel):
    """Rolling error rate (mean absolute error for a regressor) per window of the last N events."""

    model_config = ConfigDict(extra="ignore")

    state: State
    warning: float | None = None
    alert: float | None = None
    windows: dict[str, float | None] = Field(default_factory=dict, description="window size -> error rate")
    cumulative: float | None = None
    n: int = Field(default=0, description="Predictions scored")


class ServedVersion(BaseModel):
    value: float | None = Field(description="The main metric on this version's served predictions")
    n: int = Field(description="Served predictions of this version whose labels arrived")


class ServedState(BaseModel):
    """How good the predictions the API returned were, scored as their labels arrived
    (delayed labels); prequential figures say how good the model is on what it learns."""

    model_config = ConfigDict(extra="ignore")

    metric: str = Field(description="The model's main metric")
    overall: float | None = Field(description="On every served prediction scored so far")
    n: int = Field(default=0, description="Served predictions scored")
    by_version: dict[str, ServedVersion] = Field(
        default_factory=dict, description="version -> score (the newest versions that served)"
    )
    label_delay_seconds: dict[str, float | None] = Field(
        default_factory=dict, description="p50/p90/p99 of the time from prediction to label"
    )
    joins: dict[str, int] = Field(
        default_factory=dict, description="labels joined (hit), expired, unknown, late, duplicate"
    )


class ChallengerPoint(BaseModel):
    """A challenger's part of a metric point: the live chart draws its rolling main metric."""

    model_config = ConfigDict(extra="ignore")

    rolling: dict[str, float | None] = Field(default_factory=dict, description="Rolling-window prequential")
    disabled: bool = Field(default=False, description="It raised on an event and learns no more")


class MonitorsSummary(BaseModel):
    """Every trainer-side monitor of a model; stored in each checkpoint's metadata."""

    model_config = ConfigDict(extra="ignore")

    concept_drift: ConceptDriftState
    error_rate: ErrorRateState


class MetricPoint(BaseModel):
    """One point of a model's metric stream, appended by the trainer about every second."""

    model_config = ConfigDict(extra="ignore")

    time: float = Field(description="Unix time")
    n_learned: int
    version: int | None = Field(description="Newest published version")
    events_per_s: float = Field(description="Events consumed per second since the previous point")
    rejected: int = Field(default=0, description="Events sent to the dead-letter topic by this process")
    lag: dict[int, int] = Field(default_factory=dict, description="partition -> records not yet consumed")
    metrics: dict[str, float | None] = Field(default_factory=dict, description="Cumulative prequential")
    rolling: dict[str, float | None] = Field(default_factory=dict, description="Rolling-window prequential")
    error_rate: ErrorRateState
    drift_state: State = "ok"
    drift_total: int = 0
    detections: list[Detection] = Field(
        default_factory=list, description="Concept drift detections since the previous point"
    )
    served: ServedState | None = Field(
        default=None, description="Scores of served predictions (models with delayed labels)"
    )
    challengers: dict[str, ChallengerPoint] = Field(
        default_factory=dict, description="challenger name -> its rolling metrics (models with challengers)"
    )
