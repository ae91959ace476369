"""Concept drift and error-rate monitors on the learner (no Kafka)."""

from __future__ import annotations

import pickle
import random

import pytest
from river.datasets import synth

from model_store.specs import ModelSpec, SpecError
from stream.learner import Learner
from stream.learner_monitors import ErrorWindows, Monitors
from stream.pipeline import validate_spec
from tests.helpers.factories import model_spec
from tests.helpers.learning import modules_referenced

DRIFT_AT, LENGTH, BOUND = 3000, 6000, 500


def spec(**fields) -> ModelSpec:
    return model_spec(**{"error_rate": {"windows": [500, 2000]}, **fields})


def drifting(seed: int = 1):
    """Sine's concept reversed at event 3000: a known abrupt concept drift."""
    return synth.ConceptDriftStream(
        stream=synth.Sine(classification_function=0, seed=seed),
        drift_stream=synth.Sine(classification_function=1, seed=seed + 1000),
        position=DRIFT_AT,
        width=50,
        seed=seed,
    ).take(LENGTH)


def stationary(seed: int = 1):
    return synth.Sine(classification_function=0, seed=seed).take(LENGTH)


def learn(learner: Learner, stream) -> Learner:
    for x, y in stream:
        learner.learn_one(x, y)
    return learner


def test_error_windows_equal_the_mean_of_the_last_events():
    rng = random.Random(3)
    windows, errors = ErrorWindows([7, 3, 10]), []
    for _ in range(60):
        errors.append(rng.random())
        windows.update(errors[-1])
        for w in (3, 7, 10):
            assert windows.mean(w) == pytest.approx(sum(errors[-w:]) / len(errors[-w:]))
    assert windows.cumulative() == pytest.approx(sum(errors) / len(errors))
    assert list(windows.values()) == ["3", "7", "10"]


@pytest.mark.parametrize("detector", ["drift.ADWIN", "drift.binary.DDM"])
def test_abrupt_concept_drift_is_detected_within_a_bounded_delay(detector: str):
    learner = learn(Learner.from_spec(spec(drift={"detector": detector})), drifting())
    found = [d["n"] for d in learner.monitors.detections]
    assert found, "the drift was not detected"
    assert DRIFT_AT - 50 <= found[0] <= DRIFT_AT + BOUND, found
    summary = learner.monitors.summary(learner.n_learned)
    assert summary.concept_drift.detections_total == len(found)


@pytest.mark.parametrize("detector", ["drift.ADWIN", "drift.binary.DDM"])
def test_a_stationary_stream_of_the_same_length_raises_no_alert(detector: str):
    learner = learn(Learner.from_spec(spec(drift={"detector": detector})), stationary())
    summary = learner.monitors.summary(learner.n_learned)
    assert summary.concept_drift.detections_total == 0
    assert summary.concept_drift.state == "ok"
    assert summary.error_rate.state == "ok"


def test_the_error_rate_monitor_alerts_after_the_drift_and_recovers():
    learner = Learner.from_spec(spec())
    states = []
    for i, (x, y) in enumerate(drifting()):
        learner.learn_one(x, y)
        if i in (DRIFT_AT - 1, DRIFT_AT + 300, LENGTH - 1):
            states.append(learner.monitors.error_rate())
    before, during, after = states
    assert before.state == "ok" and before.windows["500"] < 0.1
    assert during.state == "alert" and during.windows["500"] >= 0.3
    assert after.windows["500"] < 0.1
    assert (during.warning, during.alert) == (0.2, 0.3)  # classifier defaults


def test_falling_error_of_a_learning_model_is_no_alarm():
    """ADWIN also cuts when the error falls (the model improves): counted, never an alert."""
    learner = Learner.from_spec(spec())
    monitors = learner.monitors
    for error in [1] * 300 + [0] * 700:  # the error only falls
        monitors.update(1, 1 - error, learner.n_learned + 1)
        learner.n_learned += 1
    assert monitors.improvements >= 1
    assert monitors.total == 0 and monitors.drift_state(learner.n_learned) == "ok"


def test_a_restarted_learner_continues_its_detector_and_windows():
    events = list(drifting())
    whole = learn(Learner.from_spec(spec()), events)
    first = learn(Learner.from_spec(spec()), events[: DRIFT_AT + 20])
    blob = pickle.dumps(first.state())
    assert not any(m.split(".")[0] in {"stream", "api", "model_store"} for m in modules_referenced(blob))
    resumed = learn(Learner.from_state(pickle.loads(blob), spec()), events[DRIFT_AT + 20 :])
    assert [d["n"] for d in resumed.monitors.detections] == [d["n"] for d in whole.monitors.detections]
    assert resumed.monitors.error_rate() == whole.monitors.error_rate()


def test_a_changed_detector_in_the_yaml_starts_a_fresh_detector():
    first = learn(Learner.from_spec(spec()), drifting())
    state = pickle.loads(pickle.dumps(first.state()))
    resumed = Learner.from_state(state, spec(drift={"detector": "drift.PageHinkley"}))
    assert type(resumed.monitors.detector).__name__ == "PageHinkley"
    assert resumed.monitors.total == 0
    assert resumed.monitors.errors.n == first.monitors.errors.n  # windows unchanged, so continued


def test_snapshots_without_monitor_state_still_load():
    learner = learn(Learner.from_spec(spec()), stationary(2))
    state = learner.state()
    del state["monitors"]  # a checkpoint written before monitors existed
    resumed = Learner.from_state(state, spec())
    assert resumed.monitors is not None and resumed.monitors.errors.n == 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"drift": {"detector": "drift.Nope"}}, "has no class Nope"),
        ({"drift": {"detector": "linear_model.LogisticRegression"}}, "river.drift"),
        ({"drift": {"detector": "drift.ADWIN", "params": {"nope": 1}}}, "ADWIN"),
        ({"task": "regression", "pipeline": ["linear_model.LinearRegression"], "metrics": ["MAE"],
          "drift": {"detector": "drift.binary.DDM"}}, "fits classifiers only"),
    ],
)  # fmt: skip
def test_a_bad_detector_in_the_yaml_fails_at_start_naming_it(fields, message):
    with pytest.raises((SpecError, ValueError), match=message):
        validate_spec(spec(**fields))


def test_error_rate_thresholds_are_validated_and_default_by_task():
    with pytest.raises(ValueError, match="must not exceed alert"):
        spec(error_rate={"warning": 0.5, "alert": 0.3})
    with pytest.raises(ValueError, match="distinct positive"):
        spec(error_rate={"windows": [100, 100]})
    regression = spec(task="regression", pipeline=["linear_model.LinearRegression"], metrics=["MAE"])
    assert regression.error_rate.thresholds("regression") == (None, None)
    assert spec().error_rate.thresholds("classification") == (0.2, 0.3)


def test_errors_appended_in_runs_equal_one_update_each():
    rng = random.Random(5)
    one, runs = ErrorWindows([7, 3, 10]), ErrorWindows([7, 3, 10])
    for _ in range(40):
        errors = [rng.random() for _ in range(rng.choice([0, 1, 2, 9, 10, 11, 12, 25]))]
        for error in errors:
            one.update(error)
        runs.extend(errors)
        assert runs.state() == one.state()
        assert runs.values() == one.values()


@pytest.mark.parametrize("detector", ["drift.ADWIN", "drift.binary.DDM"])
def test_queued_scores_give_what_settling_after_every_event_gives(detector: str):
    """The learner queues its scores for the monitors: the detections, their event numbers
    and the windows are those of scoring each event at once (reading settles the queue)."""
    queued = learn(Learner.from_spec(spec(drift={"detector": detector})), drifting())
    at_once = Learner.from_spec(spec(drift={"detector": detector}))
    for x, y in drifting():
        at_once.learn_one(x, y)
        assert at_once.monitors is not None  # reading settles
    assert queued.monitors.detections, "the drift was not detected"
    assert [d["n"] for d in queued.monitors.detections] == [d["n"] for d in at_once.monitors.detections]
    assert queued.monitors.improvements == at_once.monitors.improvements
    assert queued.monitors.error_rate() == at_once.monitors.error_rate()
    assert queued.metric_values() == at_once.metric_values()


@pytest.mark.parametrize("detector", ["drift.ADWIN", "drift.binary.DDM"])
def test_a_detection_among_unscored_events_names_its_own_event(detector: str):
    """Events without a prediction (a fresh tree's None) are not scored, yet count: a
    detection after them carries the number of the event it happened at."""
    rng = random.Random(3)
    wrong = [k > 1500 or rng.random() < 0.05 for k in range(3000)]
    run = [(1, None if rng.random() < 0.2 else int(not w)) for w in wrong]
    one = Monitors.from_spec(spec(drift={"detector": detector}))
    for k, (y, y_pred) in enumerate(run):
        if y_pred is not None:
            one.update(y, y_pred, 100 + k)
    many = Monitors.from_spec(spec(drift={"detector": detector}))
    many.update_many(run[:1000], 100)
    many.update_many(run[1000:], 1100)
    assert one.detections, "the rise of the error was not detected"
    assert [d["n"] for d in many.detections] == [d["n"] for d in one.detections]
    assert all(run[d["n"] - 100][1] is not None for d in many.detections)
    assert many.errors.state() == one.errors.state()
