import pickle

import pytest
from river import compose, datasets, linear_model, metrics, preprocessing, utils

from model_store.specs import ModelSpec
from stream.learner import Learner, WindowedMetric, _newest
from stream.learner_monitors import Monitors
from tests.helpers.factories import model_spec
from tests.helpers.learning import modules_referenced


def spec() -> ModelSpec:
    return model_spec(metrics=["Accuracy", "ROCAUC"], rolling_window=50)


def test_learner_equals_a_plain_river_prequential_loop():
    learner = Learner.from_spec(spec())
    plain = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    accuracy = metrics.Accuracy()
    for x, y in datasets.Phishing().take(500):
        y_pred = plain.predict_one(x)
        accuracy.update(y, y_pred)
        plain.learn_one(x, y)
        assert learner.learn_one(x, y) == y_pred
    probe = [x for x, _ in datasets.Phishing().take(20)]
    assert [learner.model.predict_proba_one(x) for x in probe] == [plain.predict_proba_one(x) for x in probe]
    cumulative, rolling = learner.metric_values()
    assert cumulative["Accuracy"] == accuracy.get()
    assert learner.n_learned == 500
    assert 0.5 < rolling["Accuracy"] <= 1.0 and 0.5 < cumulative["ROCAUC"] <= 1.0


def test_state_round_trips_and_references_only_river_and_builtins():
    learner = Learner.from_spec(spec())
    for x, y in datasets.Phishing().take(100):
        learner.learn_one(x, y)
    blob = pickle.dumps(learner.state())
    modules = modules_referenced(blob)
    assert any(m.startswith("river.") for m in modules)
    assert not any(m.split(".")[0] in {"stream", "api", "model_store"} for m in modules), modules
    restored = Learner.from_state(pickle.loads(blob))
    assert restored.n_learned == 100
    assert restored.metric_values() == learner.metric_values()


@pytest.mark.parametrize("cls", [metrics.Accuracy, metrics.F1, metrics.MAE])
def test_the_rolling_window_equals_river_rolling(cls):
    events = [(x, y) for x, y in datasets.Phishing().take(300)]
    pairs = [
        (float(y), float(i % 3 == 0)) if cls is metrics.MAE else (y, i % 3 == 0)
        for i, (_, y) in enumerate(events)
    ]
    window, river_rolling = WindowedMetric(cls, 50), utils.Rolling(cls, window_size=50)
    for i, (y, y_pred) in enumerate(pairs):
        river_rolling.update(y, y_pred)
        window.extend([(y, y_pred)])
        if i % 37 == 0:
            assert window.get() == pytest.approx(river_rolling.get())
    assert window.get() == pytest.approx(river_rolling.get())


def test_a_checkpoint_with_river_rolling_metrics_still_loads():
    """Checkpoints written before the learner kept its own windows hold utils.Rolling."""
    learner = Learner.from_spec(spec())
    for x, y in datasets.Phishing().take(100):
        learner.learn_one(x, y)
    state = learner.state()
    rolling = utils.Rolling(metrics.Accuracy, window_size=50)
    for y, y_pred in state["rolling"]["Accuracy"]["pairs"]:
        rolling.update(y, y_pred)
    state["rolling"] = {"Accuracy": rolling, "ROCAUC": utils.Rolling(metrics.ROCAUC, window_size=50)}
    restored = Learner.from_state(pickle.loads(pickle.dumps(state)))
    assert restored.metric_values()[1]["Accuracy"] == learner.metric_values()[1]["Accuracy"]
    assert restored.rolling["ROCAUC"].size == 50


class Refuses:
    """A model that refuses any event with the feature 'bad'."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def predict_one(self, x: dict) -> float:
        return float(len(self.seen))

    def learn_one(self, x: dict, y: float) -> None:
        if "bad" in x:
            raise ValueError("bad feature")
        self.seen.append(x)


def test_learning_a_run_stops_at_what_is_not_an_event_and_at_a_refusal():
    regressor = ModelSpec.model_validate(
        {
            "name": "r",
            "topic": "r",
            "task": "regression",
            "pipeline": ["linear_model.LinearRegression"],
            "metrics": ["MAE"],
        }
    )
    rolling = {"MAE": WindowedMetric(metrics.MAE, 10)}
    learner = Learner(Refuses(), {"MAE": metrics.MAE()}, rolling, 0, Monitors.from_spec(regressor))
    events = [({"a": 1}, 1.0), ({"a": 2}, 2.0), "not an event", ({"bad": 1}, 0.0), ({"a": 3}, 3.0)]
    assert learner.learn_many(events, 0, 5) == (2, None)
    assert learner.learn_many(events, 2, 5) == (2, None)
    stopped, error = learner.learn_many(events, 3, 5)
    assert stopped == 3 and isinstance(error, ValueError)
    assert learner.learn_many(events, 4, 5) == (5, None)
    assert learner.n_learned == 3 and [x["a"] for x in learner.model.seen] == [1, 2, 3]
    assert learner.learn_one({"a": 4}, 4.0) == 3.0  # a regressor's prediction, even 0.0, is returned
    cumulative, _ = learner.metric_values()
    # predictions 0, 1, 2, 3 for labels 1, 2, 3, 4: the refused event is in no metric
    assert cumulative["MAE"] == 1.0 and learner.monitors.errors.n == 4
    with pytest.raises(ValueError, match="bad feature"):
        learner.learn_one({"bad": 2}, 0.0)
    assert learner.n_learned == 4


def test_one_event_in_sixteen_is_timed():
    learner, timed = Learner.from_spec(spec()), []
    events = [(x, y) for x, y in datasets.Phishing().take(100)]
    for start in range(0, 100, 7):  # runs of any length: the count of events decides
        learner.learn_many(events, start, min(start + 7, 100), timed.append)
    assert len(timed) == len(range(0, 100, 16))
    assert all(isinstance(t, float) and t > 0 for t in timed)  # each a measured duration, not a count


def test_a_restored_rolling_window_takes_the_length_the_spec_now_gives():
    learner = Learner.from_spec(spec())  # rolling_window 50
    for x, y in datasets.Phishing().take(100):
        learner.learn_one(x, y)
    state = pickle.loads(pickle.dumps(learner.state()))
    shorter = Learner.from_state(state, spec().model_copy(update={"rolling_window": 20}))
    kept = list(learner.rolling["Accuracy"].pairs)[-20:]
    assert shorter.rolling["Accuracy"].size == 20 and list(shorter.rolling["Accuracy"].pairs) == kept
    assert Learner.from_state(state).rolling["Accuracy"].size == 50  # no spec: as saved


def test_a_rolling_window_takes_the_newest_scored_pairs_even_past_unscored_ones():
    pairs = [(1, 1), (1, 0), (0, None), (1, 1), (0, None), (0, 0)]
    assert _newest(pairs, 3) == [(1, 0), (1, 1), (0, 0)]  # looked past the tail's unscored
    assert _newest(pairs, 2) == [(1, 1), (0, 0)]
    assert _newest(pairs, 10) == [(1, 1), (1, 0), (1, 1), (0, 0)]
    probas = [(1, {1: 0.9}), (0, {}), (0, {0: 0.6})]
    assert _newest(probas, 2, probabilities=True) == [(1, {1: 0.9}), (0, {0: 0.6})]
