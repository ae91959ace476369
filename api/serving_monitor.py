"""What a replica watches while it serves: the features of live prediction requests (data
drift against the served version's training statistics) and its Prometheus metrics.

The prediction path only appends the request's features to a bounded window and adds
to plain Python counts (instances per version, latency bucket counts); Prometheus reads
them when it scrapes, and drift scores are computed when read, at most once a second.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from api.manager import ModelManager, Served
from api.monitor_schemas import DataDriftState, FeatureDrift, MonitorsReport
from model_store.feature_stats import psi_scores
from model_store.monitor_reports import (
    ConceptDriftState,
    Detection,
    ErrorRateState,
    MetricPoint,
    MonitorsSummary,
    ServedState,
    worst,
)

PREDICT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ServingMonitor(Collector):
    """Live request windows, data-drift scores and Prometheus metrics of one replica."""

    def __init__(self, manager: ModelManager, cache_seconds: float = 1.0) -> None:
        self.manager = manager
        self.cache_seconds = cache_seconds
        self._windows: dict[str, deque[Mapping[str, Any]]] = {
            name: deque(maxlen=spec.data_drift.window) for name, spec in manager.specs.items()
        }
        self._seen = dict.fromkeys(manager.specs, 0)
        self._cache: dict[str, tuple[tuple[int | None, int], float, DataDriftState]] = {}
        # Written by the event loop only, read (copied) by scrapes: no lock, and nothing is reset,
        # so a scrape never loses a count.
        self._predicted: dict[tuple[str, int], int] = {}  # (model, version) -> instances
        # per model: a count per bucket of PREDICT_BUCKETS, one for +Inf, then the sum of seconds
        self._latency: dict[str, list[float]] = {
            name: [0] * (len(PREDICT_BUCKETS) + 1) + [0.0] for name in manager.specs
        }
        self.registry = CollectorRegistry()
        self.registry.register(self)

    # -- the prediction path ---------------------------------------------------------

    def observe(self, served: Served, instances: Sequence[Mapping[str, Any]], seconds: float) -> None:
        """Record one answered request: its instances' features, count and latency."""
        name = served.name
        n = len(instances)
        self._windows[name].extend(instances)
        self._seen[name] += n
        key = (name, served.version)
        self._predicted[key] = self._predicted.get(key, 0) + n
        latency = self._latency[name]
        latency[bisect_left(PREDICT_BUCKETS, seconds)] += 1  # Prometheus buckets: value <= bound
        latency[-1] += seconds

    # -- reading -----------------------------------------------------------------------

    def data_drift(self, name: str) -> DataDriftState:
        """PSI of every feature of the live window against the served version's training
        statistics; cached while nothing changed, and for ``cache_seconds`` at most."""
        served = self.manager.get(name)
        version = served.version if served else None
        key = (version, self._seen[name])
        cached = self._cache.get(name)
        now = time.monotonic()
        if cached and (cached[0] == key or now - cached[1] < self.cache_seconds):
            return cached[2]
        state = self._score(name, served)
        self._cache[name] = (key, now, state)
        return state

    def _score(self, name: str, served: Served | None) -> DataDriftState:
        cfg = self.manager.specs[name].data_drift
        window = list(self._windows[name])  # a copy: requests keep appending
        reference = served.meta.feature_stats if served else {}
        ready = len(window) >= cfg.min_samples
        scores = psi_scores(reference, window) if ready else {}
        features = [
            FeatureDrift(
                feature=f,
                kind=stats.kind,
                score=scores.get(f),
                flagged=scores.get(f, 0.0) >= cfg.threshold,
            )
            for f, stats in reference.items()
        ]
        features.sort(key=lambda d: (-(d.score or 0.0), d.feature))
        return DataDriftState(
            state="alert" if any(f.flagged for f in features) else "ok",
            threshold=cfg.threshold,
            samples=len(window),
            min_samples=cfg.min_samples,
            reference_version=served.version if served and reference else None,
            reference_samples=next(iter(reference.values())).n if reference else 0,
            features=features,
        )

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        """Everything read at scrape time: predictions by version, predict latency, served
        version and its load time, refused snapshots, drift scores."""
        yield from self._request_metrics()
        served_version = GaugeMetricFamily(
            "streamlearn_served_version", "Version this replica serves", labels=["model"]
        )
        refused = CounterMetricFamily(
            "streamlearn_snapshots_refused",
            "Snapshots refused (signature, digest, Python or River version)",
            labels=["model"],
        )
        load = GaugeMetricFamily(
            "streamlearn_snapshot_load_seconds",
            "Time this replica took to fetch, verify and unpickle the version it serves (its artefact)",
            labels=["model", "version"],
        )
        drift = GaugeMetricFamily(
            "streamlearn_feature_drift_score",
            "PSI of live prediction requests against the training distribution, per feature",
            labels=["model", "feature"],
        )
        for name in self.manager.specs:
            served = self.manager.get(name)
            if served is not None:
                served_version.add_metric([name], served.version)
                load.add_metric([name, str(served.version)], served.load_seconds)
            refused.add_metric([name], self.manager.refused.get(name, 0))
            for feature in self.data_drift(name).features:
                if feature.score is not None:
                    drift.add_metric([name, feature.feature], feature.score)
        yield served_version
        yield refused
        yield load
        yield drift

    def _request_metrics(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        predictions = CounterMetricFamily(
            "streamlearn_predictions",
            "Instances predicted, by the version that predicted them",
            labels=["model", "version"],
        )
        for (name, version), count in dict(self._predicted).items():  # a copy: requests keep adding
            predictions.add_metric([name, str(version)], count)
        latency = HistogramMetricFamily(
            "streamlearn_predict_seconds",
            "Time to answer a prediction request once its body is parsed",
            labels=["model"],
        )
        for name, counts in self._latency.items():
            *per_bucket, total = counts[:]  # a copy: requests keep adding
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, PREDICT_BUCKETS), "+Inf"], per_bucket, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([name], buckets, total)
        yield predictions
        yield latency


def _detections(summary: MonitorsSummary | None, points: list[MetricPoint]) -> list[Detection]:
    found = {d.n: d for d in (summary.concept_drift.detections if summary else [])}
    for point in points:
        found.update({d.n: d for d in point.detections})
    return [found[n] for n in sorted(found)][-100:]


def monitors_report(
    name: str,
    detector: str,
    served: Served | None,
    points: list[tuple[str, dict[str, Any]]],
    data_drift: DataDriftState,
) -> MonitorsReport:
    """Every monitor of a model: the trainer's newest metric point (else the served
    checkpoint's summary) for concept drift and error rate, this replica for data drift."""
    history = [MetricPoint.model_validate(p) for _, p in points]
    latest = history[-1] if history else None
    summary = (
        MonitorsSummary.model_validate(served.meta.monitors) if served and served.meta.monitors else None
    )
    concept: ConceptDriftState | None = summary.concept_drift if summary else None
    error: ErrorRateState | None = summary.error_rate if summary else None
    if latest is not None:
        error = latest.error_rate
        concept = ConceptDriftState(
            detector=concept.detector if concept else detector,
            state=latest.drift_state,
            detections_total=max(latest.drift_total, concept.detections_total if concept else 0),
            improvements=concept.improvements if concept else 0,
            detections=_detections(summary, history),
        )
    alerts = []
    if concept and concept.state != "ok" and concept.detections:
        last = concept.detections[-1]
        alerts.append(
            f"{concept.state}: concept drift detected by {concept.detector} "
            f"at event {last.n}" + (f" (newest version then: v{last.version})" if last.version else "")
        )
    if error and error.state != "ok":
        for window, value in error.windows.items():
            limit = error.alert if error.state == "alert" else error.warning
            if value is not None and limit is not None and value >= limit:
                alerts.append(
                    f"{error.state}: error rate {value:.3f} over the last {window} events "
                    f"is at or above {limit:g}"
                )
    for f in data_drift.features:
        if f.flagged:
            alerts.append(
                f"alert: data drift on feature '{f.feature}': PSI {f.score:.3f} >= {data_drift.threshold:g}"
            )
    return MonitorsReport(
        model=name,
        version=served.version if served else None,
        state=worst(concept.state if concept else None, error.state if error else None, data_drift.state),
        alerts=alerts,
        updated_at=latest.time if latest else None,
        n_learned=latest.n_learned if latest else (served.meta.n_learned if served else None),
        concept_drift=concept,
        error_rate=error,
        data_drift=data_drift,
        served=_served_state(latest, served),
        history=history,
        history_ids=[sid for sid, _ in points],
    )


def _served_state(latest: MetricPoint | None, served: Served | None) -> ServedState | None:
    """Scores of served predictions: the trainer's newest point, else the served checkpoint's."""
    if latest is not None and latest.served is not None:
        return latest.served
    if served is not None and served.meta.served:
        return ServedState.model_validate(served.meta.served)
    return None
