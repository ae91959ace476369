"""Model specs: one YAML file per model in ``configs/models/`` (the serving template).

Both sides read them: the trainer builds the pipeline from ``pipeline``; the API
only needs the name, task and topic. Building River objects lives in
``stream/pipeline.py`` so the API never instantiates anything from a config.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from model_store.errors import ModelStoreError
from model_store.event_schema import Task

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

DEFAULT_METRICS: dict[str, list[str]] = {"classification": ["Accuracy"], "regression": ["MAE"]}
"""What a model YAML without ``metrics`` is scored with, per task."""


class SpecError(ModelStoreError, ValueError):
    """A model YAML is unreadable or invalid; the message names the file and the field."""


class CheckpointPolicy(BaseModel):
    """Checkpoint every N events or T seconds, whichever comes first; keep the newest K,
    and no more than ``max_bytes`` in all when set."""

    model_config = ConfigDict(extra="forbid")

    every_events: int = Field(default=1000, ge=1)
    every_seconds: float = Field(default=5.0, gt=0)
    keep: int = Field(default=20, ge=1)
    max_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Byte budget of the model's retained versions (both parts): beyond it the oldest "
        "are dropped first, except the pinned, promoted and tagged ones and a pending reset's",
    )
    fork: bool = Field(
        default=True,
        description="Pickle, sign and write each checkpoint in a forked child while the trainer "
        "learns on; false (or a platform without fork) writes it inline, pausing learning.",
    )


class DelayedLabelsConfig(BaseModel):
    """Predict now, learn when the label arrives (docs/delayed-labels.md)."""

    model_config = ConfigDict(extra="forbid")

    log_predictions: bool = Field(
        default=True, description="Log every served prediction to <topic>.predictions for the join"
    )
    max_age_seconds: float = Field(
        default=3600.0, gt=0, description="Longest wait between prediction and label"
    )
    max_pending: int = Field(default=100_000, ge=1, description="Most predictions (and early labels) held")


class ChallengerPromotion(BaseModel):
    """When a challenger becomes the champion by itself: better by at least ``margin`` on the main
    metric, beyond noise (its paired test's p-value under ``significance``), over ``min_events``."""

    model_config = ConfigDict(extra="forbid")

    auto: bool = False
    min_events: int = Field(default=1000, ge=1, description="Events both scored, at least")
    margin: float = Field(default=0.0, ge=0, description="Main metric difference, in its own units")
    significance: float = Field(default=0.01, gt=0, lt=1, description="p-value of the paired test, below")


class PromotionPolicy(BaseModel):
    """Which new versions are served (docs/architecture.md, "Promotion and rollback")."""

    model_config = ConfigDict(extra="forbid")

    tolerance: float | None = Field(
        default=None,
        ge=0,
        description="Serve a new version only if its rolling main metric is no worse than the "
        "promoted version's by more than this; null serves every version.",
    )
    auto_rollback: bool = Field(
        default=False, description="Pin the last healthy version when an alert follows a promotion."
    )
    alert_drop: float = Field(
        default=0.1,
        gt=0,
        description="Built-in alert: the rolling main metric is this much worse than while the "
        "last healthy version served.",
    )
    challengers: ChallengerPromotion = ChallengerPromotion()


class DriftConfig(BaseModel):
    """Concept drift: a River drift detector fed by the prequential error of every event
    (the 0/1 error of a classifier, the absolute error of a regressor)."""

    model_config = ConfigDict(extra="forbid")

    detector: str = Field(
        default="drift.ADWIN", description="A class of river.drift or river.drift.binary, e.g. 'drift.ADWIN'."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor arguments of the detector.")
    hold_events: int = Field(
        default=1000, ge=1, description="The monitor stays in alert this many events after a detection."
    )

    @field_validator("detector")
    @classmethod
    def _river_drift_class(cls, value: str) -> str:
        if not value.startswith("drift."):
            raise ValueError("name a class of river.drift or river.drift.binary, e.g. 'drift.ADWIN'")
        return value


class ErrorRateConfig(BaseModel):
    """Rolling error rate (mean absolute error for a regressor) over windows of the last N
    events, with thresholds that turn the monitor's state to warning or alert."""

    model_config = ConfigDict(extra="forbid")

    windows: list[int] = Field(default=[1000, 10000], min_length=1, max_length=4)
    warning: float | None = Field(default=None, ge=0, description="Default 0.2 for a classifier, none else.")
    alert: float | None = Field(default=None, ge=0, description="Default 0.3 for a classifier, none else.")
    min_events: int = Field(default=100, ge=1, description="A window counts once it holds this many events.")

    @field_validator("windows")
    @classmethod
    def _positive_distinct(cls, value: list[int]) -> list[int]:
        if any(w < 1 for w in value) or len(set(value)) != len(value):
            raise ValueError("windows are distinct positive event counts, e.g. [1000, 10000]")
        return sorted(value)

    @model_validator(mode="after")
    def _ordered(self) -> ErrorRateConfig:
        if self.warning is not None and self.alert is not None and self.warning > self.alert:
            raise ValueError(f"warning ({self.warning}) must not exceed alert ({self.alert})")
        return self

    def thresholds(self, task: Task) -> tuple[float | None, float | None]:
        """(warning, alert); a classifier gets 0.2 / 0.3 unless its YAML says otherwise."""
        if task == "classification":
            return (0.2 if self.warning is None else self.warning, 0.3 if self.alert is None else self.alert)
        return self.warning, self.alert


class DataDriftConfig(BaseModel):
    """Data drift: live prediction requests against the features the model learned from,
    scored per feature with the population stability index on quantile bins."""

    model_config = ConfigDict(extra="forbid")

    bins: int = Field(default=10, ge=2, le=50, description="Quantile bins of a numeric feature.")
    sample: int = Field(default=2000, ge=50, description="Reference: the last N events learned.")
    window: int = Field(default=1000, ge=10, description="Live: the last N prediction requests.")
    min_samples: int = Field(default=200, ge=1, description="Requests needed before features are scored.")
    threshold: float = Field(default=0.25, gt=0, description="PSI at or above which a feature is flagged.")
    max_features: int = Field(default=200, ge=1, description="Features summarised per checkpoint.")


class ModelSpec(BaseModel):
    """One model: where its events come from, what it learns, how it is checkpointed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    topic: str
    task: Task
    pipeline: list[Any] = Field(
        min_length=1,
        description="Steps as River class paths: 'preprocessing.StandardScaler' or "
        "{'linear_model.LogisticRegression': {param: value}}; a value may itself be "
        "a one-key {class path: params} mapping.",
    )
    metrics: list[str] = Field(
        min_length=1,
        description="river.metrics class names; the first is the main metric. "
        "Default: [Accuracy] for classification, [MAE] for regression.",
    )
    challengers: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Other pipelines learning the same events beside the served one (the champion), "
        "by name, in the same syntax as `pipeline`.",
    )
    rolling_window: int = Field(default=1000, ge=1)
    checkpoint: CheckpointPolicy = CheckpointPolicy()
    partitions: int = Field(default=1, ge=1, description="Partitions when the trainer creates the topic.")
    delayed_labels: DelayedLabelsConfig = DelayedLabelsConfig()
    promotion: PromotionPolicy = PromotionPolicy()
    drift: DriftConfig = DriftConfig()
    error_rate: ErrorRateConfig = ErrorRateConfig()
    data_drift: DataDriftConfig = DataDriftConfig()
    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> str:
        """The YAML file this spec came from, for error messages."""
        return str(self._source) if self._source else f"model '{self.name}'"

    @model_validator(mode="before")
    @classmethod
    def _default_metrics(cls, raw: Any) -> Any:
        """Fill in the task's default metrics when the YAML names none (an empty list stays an error)."""
        if isinstance(raw, dict) and raw.get("metrics") is None and raw.get("task") in DEFAULT_METRICS:
            return {**raw, "metrics": list(DEFAULT_METRICS[raw["task"]])}
        return raw

    @field_validator("challengers")
    @classmethod
    def _challenger_names(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, steps in value.items():
            if not NAME_RE.match(name) or name == "champion":
                raise ValueError(f"challenger '{name}': use letters, digits, '_', '.' or '-', not 'champion'")
            if not steps:
                raise ValueError(f"challenger '{name}': a pipeline of at least one step")
        return value

    @field_validator("name", "topic")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("use letters, digits, '_', '.' or '-' (at most 64)")
        return value

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    @property
    def predictions_topic(self) -> str:
        return f"{self.topic}.predictions"

    def config_hash(self) -> str:
        """Stable hash of the spec, recorded in every checkpoint. How checkpoints are written
        (``checkpoint.fork``) changes nothing they hold, so it is left out."""
        spec = self.model_dump(mode="json", exclude={"checkpoint": {"fork"}})
        canonical = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]


def _describe(error: ValidationError) -> str:
    parts = []
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"field '{where}': {err['msg']}")
    return "; ".join(parts)


def load_spec(path: Path) -> ModelSpec:
    """Read and validate one model YAML."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    try:
        spec = ModelSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: {_describe(exc)}") from exc
    spec._source = path
    return spec


def load_specs(models_dir: Path) -> dict[str, ModelSpec]:
    """Every ``*.yaml``/``*.yml`` in the directory, keyed by model name."""
    if not models_dir.is_dir():
        raise SpecError(f"models directory {models_dir} does not exist")
    specs: dict[str, ModelSpec] = {}
    for path in sorted([*models_dir.glob("*.yaml"), *models_dir.glob("*.yml")]):
        spec = load_spec(path)
        if spec.name in specs:
            raise SpecError(f"{path}: model name '{spec.name}' is defined twice")
        specs[spec.name] = spec
    return specs
