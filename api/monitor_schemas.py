"""Bodies of the monitoring endpoints, as they appear in the OpenAPI at /docs."""

from __future__ import annotations

from pydantic import BaseModel, Field

from model_store.monitor_reports import ConceptDriftState, ErrorRateState, MetricPoint, ServedState, State

PSI_TEST = "PSI (population stability index) on the training quantile bins"


class FeatureDrift(BaseModel):
    feature: str
    kind: str = Field(description="numeric (quantile bins) or categorical")
    score: float | None = Field(
        description="PSI of live requests against training; null until enough requests"
    )
    flagged: bool


class DataDriftState(BaseModel):
    """Features of recent prediction requests against those the served version learned from."""

    test: str = PSI_TEST
    state: State = Field(description="alert when a feature is flagged")
    threshold: float = Field(description="PSI at or above which a feature is flagged")
    samples: int = Field(description="Prediction requests in the live window")
    min_samples: int
    reference_version: int | None = Field(description="Version whose training statistics are the reference")
    reference_samples: int = Field(default=0, description="Events in the training sample")
    features: list[FeatureDrift] = Field(default_factory=list, description="Most drifted first")


class MonitorsReport(BaseModel):
    """Every monitor of one model: concept drift, error rate, data drift, and recent history."""

    model: str
    version: int | None = Field(description="Version this replica serves")
    state: State = Field(description="Worst state of all monitors")
    alerts: list[str] = Field(description="What is in warning or alert, in words")
    updated_at: float | None = Field(description="Unix time of the trainer's newest metric point")
    n_learned: int | None = None
    concept_drift: ConceptDriftState | None
    error_rate: ErrorRateState | None
    data_drift: DataDriftState
    served: ServedState | None = Field(
        default=None,
        description="Scores of the predictions served, as their labels arrived (delayed labels); "
        "null for a model that does not log predictions",
    )
    history: list[MetricPoint] = Field(description="Recent metric points, oldest first")
    history_ids: list[str] = Field(description="Stream id of each history point (for SSE resumption)")
