"""Served-prediction scores reach the trainer's metric points and Prometheus, bounded."""

from __future__ import annotations

import redis
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from river import metrics

from model_store.monitor_reports import MetricPoint, ServedState
from model_store.store import CheckpointStore
from stream.fleet import Fleet
from stream.joiner import Joined
from stream.learner import Learner
from stream.served_scores import MAX_VERSIONS, ServedScores
from stream.settings import TrainerSettings
from stream.telemetry import TrainerTelemetry
from tests.helpers.factories import model_spec
from tests.helpers.metrics import TRAINER_METRICS

SPEC = model_spec(
    pipeline=["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}],
    delayed_labels={"max_age_seconds": 60},
)


def joined(i: int, version: int, right: bool) -> Joined:
    return Joined(f"id-{i}", {"x": 1.0}, True, True if right else False, None, version, 1000 * (i % 7))


def scored(outcomes: list[tuple[int, bool]]) -> ServedScores:
    scores = ServedScores(SPEC)
    for i, (version, right) in enumerate(outcomes):
        scores.update(joined(i, version, right))
    return scores


def test_summary_counts_every_scored_prediction_and_matches_river():
    outcomes = [(1, True), (1, False), (2, True), (2, True), (2, False)]
    summary = ServedState.model_validate(scored(outcomes).summary({"hit": 5}))
    assert summary.n == 5
    by_hand = metrics.Accuracy()
    for _, right in outcomes:
        by_hand.update(True, right)
    assert summary.overall == by_hand.get()
    assert {v: (s.value, s.n) for v, s in summary.by_version.items()} == {"1": (0.5, 2), "2": (2 / 3, 3)}


def test_versions_scored_separately_are_bounded_but_the_overall_score_keeps_everything():
    scores = scored([(v, v % 2 == 0) for v in range(MAX_VERSIONS + 30)])
    summary = ServedState.model_validate(scores.summary({}))
    assert len(summary.by_version) == MAX_VERSIONS
    assert min(int(v) for v in summary.by_version) == 30
    assert summary.n == MAX_VERSIONS + 30
    assert scores.state()["n"] == ServedScores(SPEC, scores.state()).n


def test_points_and_prometheus_carry_the_served_scores():
    telemetry = TrainerTelemetry(SPEC, store=None, learner=Learner.from_spec(SPEC), version=3)
    summary = scored([(3, True), (3, True), (3, False)]).summary({"hit": 3, "unknown": 1})
    point = telemetry.point(Learner.from_spec(SPEC), {0: 0}, now=1.0, served=summary)
    assert MetricPoint.model_validate(point.model_dump(mode="json")).served.overall == 2 / 3

    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(telemetry.registry).decode())
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[
        ("streamlearn_served_metric", (("metric", "Accuracy"), ("model", "m"), ("version", "all")))
    ] == (2 / 3)
    assert samples[("streamlearn_served_scored_total", (("model", "m"), ("version", "3")))] == 3
    assert samples[("streamlearn_label_joins_total", (("model", "m"), ("outcome", "unknown")))] == 1
    assert ("streamlearn_label_delay_seconds", (("model", "m"), ("quantile", "p50"))) in samples


def test_the_trainer_exports_exactly_the_metrics_the_configs_know():
    telemetry = TrainerTelemetry(SPEC, store=None, learner=Learner.from_spec(SPEC), version=None)
    telemetry.point(Learner.from_spec(SPEC), {0: 0}, now=1.0, served=scored([(1, True)]).summary({"hit": 1}))
    telemetry.batch(1, 1)
    telemetry.rejected("schema: bad")
    exported = set()
    for family in telemetry.registry.collect():
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    # the rest come from the train --all supervisor, merged with its workers' on one endpoint
    store = CheckpointStore(redis.Redis(), "p")  # never connects: scripts register lazily
    supervisor = Fleet({"m": SPEC}, TrainerSettings(), store)
    for family in supervisor.own_registry.collect():
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    assert exported == TRAINER_METRICS


def test_a_regressor_s_served_predictions_are_scored_with_its_metric():
    spec = SPEC.model_copy(update={"task": "regression", "metrics": ["MAE"]})
    scores = ServedScores(spec)
    for i, (label, prediction) in enumerate([(3.0, 2.5), (1.0, 2.0)]):
        scores.update(Joined(f"r{i}", {"x": 1.0}, label, prediction, None, 1, 500))
    summary = ServedState.model_validate(scores.summary({"hit": 2}))
    assert (summary.metric, summary.overall, summary.n) == ("MAE", 0.75, 2)
