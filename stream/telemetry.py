"""What the trainer tells the world about itself: Prometheus metrics on its own port, and a
metric point in the model's capped Redis stream about every second (dashboards read it).

The per-event path only adds a learn timing to plain bucket counts; Prometheus
counters move once per poll batch, gauges and the metric point once per second.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from model_store.monitor_reports import Detection, ErrorRateState, MetricPoint
from model_store.snapshot import Runtime, SnapshotMeta
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore
from stream.learner import Learner

log = logging.getLogger(__name__)

LEARN_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 1.0)
CHECKPOINT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def reject_reason(reason: str) -> str:
    """The ``reason`` label of a dead-lettered event, from its dead-letter message."""
    if reason.startswith("not JSON"):
        return "not_json"
    if reason.startswith("schema"):
        return "schema"
    if reason.startswith("label"):
        return "label"
    if reason.startswith("model"):
        return "model"
    return "empty" if reason.startswith("empty") else "other"


class LatencyBuckets(Collector):
    """A Prometheus histogram filled without a lock from the learning thread: ``add`` is a
    bisect and two increments, cheap enough to time every event."""

    def __init__(self, name: str, documentation: str, model: str, bounds: tuple[float, ...]) -> None:
        self.name, self.documentation, self.model = name, documentation, model
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        counts, total = list(self.counts), self.sum
        family = HistogramMetricFamily(self.name, self.documentation, labels=["model"])
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric([self.model], buckets, total)
        yield family


class ServedMetrics(Collector):
    """Scores of served predictions (delayed labels), read at scrape time from the newest
    summary: they change only when labels arrive, and come back with a checkpoint."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.summary: dict[str, Any] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        summary, model = self.summary, self.model
        if summary is None:
            return
        metric = GaugeMetricFamily(
            "streamlearn_served_metric",
            "The main metric on served predictions whose labels arrived (version: a version, or all)",
            labels=["model", "metric", "version"],
        )
        scored = CounterMetricFamily(
            "streamlearn_served_scored",
            "Served predictions scored against their label",
            labels=["model", "version"],
        )
        if summary.get("overall") is not None:
            metric.add_metric([model, summary["metric"], "all"], summary["overall"])
        for version, score in summary.get("by_version", {}).items():
            if score.get("value") is not None:
                metric.add_metric([model, summary["metric"], version], score["value"])
            scored.add_metric([model, version], score.get("n", 0))
        delay = GaugeMetricFamily(
            "streamlearn_label_delay_seconds",
            "Quantiles of the time from a served prediction to its label",
            labels=["model", "quantile"],
        )
        for quantile, seconds in summary.get("label_delay_seconds", {}).items():
            if seconds is not None:
                delay.add_metric([model, quantile], seconds)
        joins = CounterMetricFamily(
            "streamlearn_label_joins",
            "Label-only events by outcome: hit (joined), expired, unknown, late, duplicate",
            labels=["model", "outcome"],
        )
        for outcome, count in summary.get("joins", {}).items():
            joins.add_metric([model, outcome], count)
        yield from (metric, scored, delay, joins)


class TrainerTelemetry:
    """Prometheus metrics and metric points of one model's trainer."""

    def __init__(
        self,
        spec: ModelSpec,
        store: CheckpointStore,
        learner: Learner,
        version: int | None,
        registry: CollectorRegistry | None = None,
        point_every: float = 1.0,
        idle_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec, self.store, self.clock = spec, store, clock
        self.point_every, self.idle_every = point_every, idle_every
        self.registry = registry or CollectorRegistry()
        model, r = spec.name, self.registry

        def own(kind: type, name: str, documentation: str, **extra: Any) -> Any:
            """A metric with one series, this model's."""
            return kind(name, documentation, ["model"], registry=r, **extra).labels(model)

        def by(kind: type, name: str, documentation: str, *labels: str) -> Any:
            """A metric with a series per model and ``labels``."""
            return kind(name, documentation, ["model", *labels], registry=r)

        self.consumed = own(Counter, "streamlearn_events_consumed", "Kafka records consumed")
        self.learned = own(Counter, "streamlearn_events_learned", "Events learned (test-then-train)")
        self._rejected = by(
            Counter, "streamlearn_events_rejected", "Events sent to the dead-letter topic", "reason"
        )
        self._dead_failed = own(
            Counter,
            "streamlearn_dead_letters_failed",
            "Dead letters Kafka refused or did not acknowledge (each is retried; checkpoints wait)",
        )
        self._dead_unacked = own(
            Gauge,
            "streamlearn_dead_letters_unacknowledged",
            "Dead letters not acknowledged yet at the last checkpoint attempt; above 0 holds checkpoints",
        )
        self._pending = own(
            Gauge,
            "streamlearn_label_joins_pending",
            "Logged predictions waiting for their label (the delayed-label join's pending window)",
        )
        self._challenger = by(
            Gauge,
            "streamlearn_challenger_metric",
            "A challenger's prequential metric at the newest version (window: cumulative or rolling)",
            "challenger",
            "metric",
            "window",
        )
        self._challenger_p = by(
            Gauge,
            "streamlearn_challenger_p_value",
            "p-value of the paired test of a challenger against the champion (small: a real difference)",
            "challenger",
        )
        self._challenger_disabled = by(
            Gauge,
            "streamlearn_challenger_disabled",
            "1 when the challenger raised on an event and was disabled (the error is on the leaderboard)",
            "challenger",
        )
        self._challenger_served = by(
            Gauge,
            "streamlearn_challenger_served_metric",
            "A challenger's main metric on the served requests whose labels joined (it predicts on "
            "their logged features before learning the label), at the newest version",
            "challenger",
            "metric",
        )
        self._challenger_served_p = by(
            Gauge,
            "streamlearn_challenger_served_p_value",
            "p-value of the paired test of a challenger against the predictions actually served",
            "challenger",
        )
        self._challenger_served_n = by(
            Gauge,
            "streamlearn_challenger_served_requests",
            "Served requests whose labels joined that a challenger was scored on",
            "challenger",
        )
        self._owns = own(
            Gauge,
            "streamlearn_trainer_owns_model",
            "1 while this trainer holds the model's lease, 0 while it is a standby",
        )
        self._epoch = own(
            Gauge, "streamlearn_trainer_lease_epoch", "Fencing epoch of the lease this trainer holds"
        )
        self._acquired = own(
            Counter,
            "streamlearn_trainer_lease_acquisitions",
            "Times this trainer took the model's lease (start-up or a hand-over)",
        )
        self._fenced = own(
            Counter,
            "streamlearn_checkpoints_fenced",
            "Checkpoints refused because another trainer was granted the model's lease since",
        )
        self.learn_seconds = LatencyBuckets(
            "streamlearn_learn_seconds",
            "Duration of one test-then-train step: predict, score, learn (one event in 16 is timed)",
            model,
            LEARN_BUCKETS,
        )
        r.register(self.learn_seconds)
        self._metric = by(
            Gauge,
            "streamlearn_prequential_metric",
            "Prequential metric (window: cumulative or rolling)",
            "metric",
            "window",
        )
        self._error = by(
            Gauge,
            "streamlearn_error_rate",
            "Error rate (mean absolute error for a regressor) over the last N events, or cumulative",
            "window",
        )
        self._drift = by(
            Counter, "streamlearn_drift_detections", "Concept drift detections", "detector"
        ).labels(model, spec.drift.detector)
        self.checkpoint_seconds = own(
            Histogram,
            "streamlearn_checkpoint_seconds",
            "Duration of a checkpoint (serialise, sign, publish)",
            buckets=CHECKPOINT_BUCKETS,
        )
        bytes_ = by(
            Gauge,
            "streamlearn_checkpoint_bytes",
            "Size of the newest checkpoint, per part: artefact (what replicas load) or training",
            "part",
        )
        self.artefact_bytes, self.training_bytes = (
            bytes_.labels(model, "artefact"),
            bytes_.labels(model, "training"),
        )
        self._store_full = own(
            Gauge,
            "streamlearn_checkpoint_store_full",
            "1 while Redis refuses the model's checkpoints for memory and retention frees nothing",
        )
        self.retained_bytes = own(
            Gauge,
            "streamlearn_checkpoint_retained_bytes",
            "Bytes every retained version of the model holds in Redis (both parts)",
        )
        self._lag = by(
            Gauge, "streamlearn_consumer_lag", "Records in the topic not consumed yet", "partition"
        )
        self.version_gauge = own(Gauge, "streamlearn_trainer_version", "Newest version the trainer published")
        self._incompatible = by(
            Gauge,
            "streamlearn_checkpoint_incompatible",
            "1 while the trainer refuses to resume because its newest checkpoint was written by "
            "another Python or River (labels: the checkpoint's runtime and this trainer's)",
            "checkpoint_python",
            "checkpoint_river",
            "running_python",
            "running_river",
        )
        self.served = ServedMetrics(model)
        r.register(self.served)
        self.version = version
        if version is not None:
            self.version_gauge.set(version)
        self._reported = learner.monitors.total if learner.monitors is not None else 0
        self._since_point = 0
        self._rejected_total = 0
        self._last_point = clock()
        self._next_point = self._last_point + point_every
        self._redis_warned = 0.0

    # -- per batch -----------------------------------------------------------------

    def batch(self, consumed: int, learned: int) -> None:
        self.consumed.inc(consumed)
        if learned:
            self.learned.inc(learned)
        self._since_point += consumed

    def owned(self, epoch: int | None) -> None:
        """This trainer took the lease with ``epoch``, or (None) gave it up or lost it."""
        self._owns.set(0 if epoch is None else 1)
        if epoch is not None:
            self._epoch.set(epoch)
            self._acquired.inc()

    def store_full(self, full: bool) -> None:
        self._store_full.set(1 if full else 0)

    def fenced(self) -> None:
        self._fenced.inc()

    def pending_joins(self, n: int) -> None:
        self._pending.set(n)

    def dead_letter_failed(self) -> None:
        self._dead_failed.inc()

    def dead_letters_unacknowledged(self, n: int) -> None:
        self._dead_unacked.set(n)

    def rejected(self, reason: str) -> None:
        self._rejected.labels(self.spec.name, reject_reason(reason)).inc()
        self._rejected_total += 1

    def checkpointed(self, meta: SnapshotMeta, seconds: float, retained_bytes: int) -> None:
        self.version = meta.version
        self.version_gauge.set(meta.version)
        self.checkpoint_seconds.observe(seconds)
        self.artefact_bytes.set(meta.blob_bytes)
        self.training_bytes.set(meta.training_bytes)
        self.retained_bytes.set(retained_bytes)
        for name, row in meta.challengers.items():
            for window, values in (("cumulative", row["metrics"]), ("rolling", row["rolling_metrics"])):
                for metric, value in values.items():
                    if value is not None:
                        self._challenger.labels(self.spec.name, name, metric, window).set(value)
            self._challenger_disabled.labels(self.spec.name, name).set(1 if row.get("error") else 0)
            p_value = (row.get("paired") or {}).get("p_value")
            if p_value is not None:
                self._challenger_p.labels(self.spec.name, name).set(p_value)
            served = row.get("served") or {}
            if served.get("n"):
                self._challenger_served_n.labels(self.spec.name, name).set(served["n"])
                if served.get("value") is not None:
                    self._challenger_served.labels(self.spec.name, name, served["metric"]).set(
                        served["value"]
                    )
                self._challenger_served_p.labels(self.spec.name, name).set(served["paired"]["p_value"])

    def incompatible(self, written: Runtime, running: Runtime) -> None:
        """The newest checkpoint needs another runtime: the trainer does not train this model."""
        self._incompatible.labels(self.spec.name, *written, *running).set(1)

    # -- about every second --------------------------------------------------------

    def resumed(self, learner: Learner, version: int | None) -> None:
        """The trainer restored a checkpoint: detections it holds were reported before."""
        self.version = version
        if version is not None:
            self.version_gauge.set(version)
        self._reported = learner.monitors.total if learner.monitors is not None else 0

    def tick(
        self,
        learner: Learner,
        lags: Callable[[], dict[int, int]],
        served: Callable[[], dict[str, Any]] | None = None,
        challengers: Callable[[], dict[str, Any]] | None = None,
    ) -> MetricPoint | None:
        """Append a metric point when one is due: every ``point_every`` seconds while events
        arrive, every ``idle_every`` seconds otherwise."""
        now = self.clock()
        if now < self._next_point:
            return None
        self._next_point = now + self.point_every
        if not self._since_point and now - self._last_point < self.idle_every:
            return None
        point = self.point(
            learner,
            lags(),
            now,
            served() if served is not None else None,
            challengers() if challengers is not None else None,
        )
        try:
            self.store.append_metric_point(self.spec.name, point.model_dump(mode="json"))
        except redis.RedisError as exc:
            if now - self._redis_warned > 30:
                log.warning("%s: cannot append a metric point (%s); learning goes on", self.spec.name, exc)
                self._redis_warned = now
        return point

    def point(
        self,
        learner: Learner,
        lags: dict[int, int],
        now: float,
        served: dict[str, Any] | None = None,
        challengers: dict[str, Any] | None = None,
    ) -> MetricPoint:
        """Set the gauges and build the metric point of this moment (``challengers``: each one's
        rolling metrics, the live chart's lines beside the champion's)."""
        if served is not None:
            self.served.summary = served
        elapsed = max(now - self._last_point, 1e-9)
        rate, self._since_point, self._last_point = self._since_point / elapsed, 0, now
        model = self.spec.name
        cumulative, rolling = learner.metric_values()
        for window, values in (("cumulative", cumulative), ("rolling", rolling)):
            for metric, value in values.items():
                if value is not None:
                    self._metric.labels(model, metric, window).set(value)
        for partition, lag in lags.items():
            self._lag.labels(model, str(partition)).set(lag)
        monitors = learner.monitors
        drift: dict[str, Any] = {}  # the point's defaults while no monitors run
        error_rate = ErrorRateState(state="ok")
        if monitors is not None:
            error_rate = monitors.error_rate()
            for window, value in [*error_rate.windows.items(), ("cumulative", error_rate.cumulative)]:
                if value is not None:
                    self._error.labels(model, window).set(value)
            new = monitors.total - self._reported
            if new > 0:
                self._drift.inc(new)
            fresh: list[dict[str, Any]] = monitors.detections[-new:] if new > 0 else []
            self._reported = monitors.total
            drift = {
                "drift_state": monitors.drift_state(learner.n_learned),
                "drift_total": monitors.total,
                "detections": [Detection(**d) for d in fresh],
            }
        return MetricPoint(
            time=time.time(),
            n_learned=learner.n_learned,
            version=self.version,
            events_per_s=rate,
            rejected=self._rejected_total,
            lag=lags,
            metrics=cumulative,
            rolling=rolling,
            error_rate=error_rate,
            served=served,
            challengers=challengers or {},
            **drift,
        )


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> Any | None:
    """Expose ``registry`` on http://host:port/metrics; None (and an error logged) when the
    port is taken, since a trainer without metrics still learns."""
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, host, registry=registry)
    except OSError as exc:
        log.error("cannot serve Prometheus metrics on %s:%d: %s", host, port, exc)
        return None
    log.info("Prometheus metrics on http://%s:%d/metrics", host, port)
    return server
