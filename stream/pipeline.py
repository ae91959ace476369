"""Build River pipelines and metrics from a model spec, naming only River classes.

A config is not a way to import arbitrary code: every class path is resolved
under the ``river`` package and must be a class defined by River.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from river import base, compose, dummy, metrics, stats

from model_store.specs import ModelSpec, SpecError

_PATH_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.[A-Z][A-Za-z0-9_]*$")


def resolve_river_class(path: str) -> type:
    """``'linear_model.LogisticRegression'`` -> the class; anything outside River is refused."""
    if not isinstance(path, str) or not _PATH_RE.match(path):
        raise SpecError(f"'{path}' is not a River class path like 'linear_model.LogisticRegression'")
    module_path, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(f"river.{module_path}")
    except ImportError as exc:
        raise SpecError(f"'{path}': river.{module_path} is not a River module") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not cls.__module__.startswith("river."):
        raise SpecError(f"'{path}': river.{module_path} has no class {class_name}")
    return cls


def _is_class_mapping(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(next(iter(value)), str)
        and _PATH_RE.match(next(iter(value))) is not None
    )


def _build_value(value: Any, where: str) -> Any:
    if _is_class_mapping(value):
        return build_object(value, where)
    if isinstance(value, list):
        return [_build_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def build_object(step: Any, where: str) -> Any:
    """``'path.Class'`` or ``{'path.Class': {param: value}}`` -> an instance."""
    if isinstance(step, str):
        path, params = step, {}
    elif isinstance(step, dict) and len(step) == 1:
        path, params = next(iter(step.items()))
        params = params or {}
        if not isinstance(params, dict):
            raise SpecError(f"{where}: parameters of {path} must be a mapping")
    else:
        raise SpecError(f"{where}: expected 'module.Class' or {{'module.Class': {{params}}}}")
    try:
        cls = resolve_river_class(path)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from exc
    kwargs = {name: _build_value(v, f"{where}.{path}.{name}") for name, v in params.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {path}({kwargs}) failed: {exc}") from exc


def build_pipeline(spec: ModelSpec) -> base.Estimator:
    """The spec's steps chained into one River pipeline, checked against the task."""
    return build_pipeline_steps(spec.pipeline, spec, "pipeline")


def build_pipeline_steps(pipeline: list[Any], spec: ModelSpec, field: str) -> base.Estimator:
    """``pipeline`` (the spec's, or a challenger's at ``field``) chained into one River
    pipeline, with the same allow-list, checked against the task."""
    steps = [build_object(step, f"model '{spec.name}' {field}[{i}]") for i, step in enumerate(pipeline)]
    model = steps[0] if len(steps) == 1 else compose.Pipeline(*steps)
    final = steps[-1]
    expected = base.Classifier if spec.task == "classification" else base.Regressor
    if not isinstance(final, expected):
        raise SpecError(
            f"model '{spec.name}': last pipeline step {type(final).__name__} is not a "
            f"{expected.__name__}, but the task is {spec.task}"
        )
    return model


def build_metric(name: str, spec: ModelSpec) -> metrics.base.Metric:
    """A river.metrics class by name, checked against the task."""
    cls = getattr(metrics, name, None)
    if not isinstance(cls, type) or not issubclass(cls, metrics.base.Metric):
        raise SpecError(f"model '{spec.name}' metrics: '{name}' is not a river.metrics class")
    metric = cls()
    if not metric.works_with(_task_estimator(spec)):
        raise SpecError(f"model '{spec.name}' metrics: {name} does not fit a {spec.task} task")
    return metric


def build_detector(spec: ModelSpec) -> base.DriftDetector | base.BinaryDriftDetector:
    """The spec's concept drift detector, a class of river.drift or river.drift.binary.

    A binary detector watches a 0/1 error, so it only fits a classifier."""
    where = f"model '{spec.name}' drift.detector"
    detector = build_object({spec.drift.detector: spec.drift.params}, where)
    if isinstance(detector, base.BinaryDriftDetector):
        if spec.task != "classification":
            raise SpecError(
                f"{where}: {spec.drift.detector} watches a 0/1 error and fits classifiers only; "
                "use drift.ADWIN, drift.PageHinkley or drift.KSWIN for a regressor"
            )
    elif not isinstance(detector, base.DriftDetector):
        raise SpecError(f"{where}: {spec.drift.detector} is not a drift detector of river.drift")
    return detector


def _task_estimator(spec: ModelSpec) -> base.Estimator:
    """A stand-in estimator of the task, for ``Metric.works_with``."""
    if spec.task == "classification":
        return dummy.NoChangeClassifier()
    return dummy.StatisticRegressor(stats.Mean())


def validate_spec(spec: ModelSpec) -> None:
    """Build everything once so a bad config fails at start, naming the file and the field."""
    try:
        build_pipeline(spec)
        for name, steps in spec.challengers.items():
            build_pipeline_steps(steps, spec, f"challengers.{name}")
        for name in spec.metrics:
            build_metric(name, spec)
        build_detector(spec)
    except SpecError as exc:
        if spec.source in str(exc):
            raise
        raise SpecError(f"{spec.source}: {exc}") from exc
