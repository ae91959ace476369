"""Challengers learn the champion's events test-then-train, with a paired test against it."""

from __future__ import annotations

import copy
import pickle

from river import compose, datasets, evaluate, linear_model, metrics, preprocessing, tree

from model_store.leaderboard import leaderboard
from model_store.snapshot import SnapshotMeta
from model_store.specs import ModelSpec
from stream.challengers import Challengers, PairedTest
from stream.learner import Learner
from tests.helpers.factories import model_spec

TREE = [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]
LOGISTIC = ["preprocessing.StandardScaler", "linear_model.LogisticRegression"]


def spec(**challengers) -> ModelSpec:
    return model_spec(
        pipeline=LOGISTIC, metrics=["Accuracy", "F1"], rolling_window=100, challengers=challengers
    )


def run(s: ModelSpec, events: list, runs: int = 7) -> tuple[Learner, Challengers]:
    """The trainer's path: the champion learns a run, then every challenger the same run."""
    learner, challengers = Learner.from_spec(s), Challengers.from_spec(s)
    for start in range(0, len(events), runs):
        done, error = learner.learn_many(events, start, min(start + runs, len(events)))
        assert error is None
        challengers.learn(events, start, done, learner.recent_predictions(done - start))
    return learner, challengers


def progressive(model, events) -> dict[str, float]:
    scores = [metrics.Accuracy(), metrics.F1()]
    evaluate.progressive_val_score(iter(events), model, metrics.base.Metrics(scores))
    return {type(m).__name__: m.get() for m in scores}


def test_each_challenger_scores_as_river_s_progressive_validation_and_the_champion_is_unchanged():
    events = list(datasets.Phishing().take(600))
    alone, _ = run(spec(), events)
    champion, challengers = run(
        spec(tree=TREE, wide=[*LOGISTIC[:1], {"linear_model.LogisticRegression": {"l2": 0.1}}]), events
    )
    assert champion.metric_values() == alone.metric_values()
    references = {
        "tree": tree.HoeffdingTreeClassifier(grace_period=50),
        "wide": compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(l2=0.1)),
    }
    for name, reference in references.items():
        cumulative, _ = challengers.members[name].learner.metric_values()
        expected = progressive(reference, events)
        assert cumulative["Accuracy"] == expected["Accuracy"] and cumulative["F1"] == expected["F1"], name
        assert challengers.members[name].learner.n_learned == 600


def test_the_paired_test_tells_a_real_difference_from_noise():
    clear = PairedTest("classification")
    for i in range(1000):
        clear.update(True, i % 3 == 0, True)  # the challenger is right where the champion is wrong
    assert clear.result()["p_value"] < 1e-6 and clear.result()["difference"] > 0
    same = PairedTest("classification")
    for i in range(1000):
        same.update(True, i % 2 == 0, i % 2 == 1)  # as often right, on different events
    assert same.result()["p_value"] > 0.5
    regression = PairedTest("regression")
    for i in range(500):
        regression.update(10.0, 10.0 + (i % 5), 10.0 + (i % 5) * 0.5)
    assert regression.result()["p_value"] < 1e-6 and regression.result()["difference"] > 0
    restored = PairedTest("regression", regression.state())
    assert restored.result() == regression.result()


def test_a_challenger_that_raises_is_disabled_and_the_champion_learns_on():
    events = list(datasets.Phishing().take(50))
    s = spec(broken=["preprocessing.StandardScaler", "linear_model.LogisticRegression"])
    learner, challengers = Learner.from_spec(s), Challengers.from_spec(s)
    broken = challengers.members["broken"].learner
    broken.model = BrokenAfter(broken.model, 20)
    for start in range(0, 50, 10):
        done, _ = learner.learn_many(events, start, start + 10)
        challengers.learn(events, start, done, learner.recent_predictions(done - start))
    assert learner.n_learned == 50
    member = challengers.members["broken"]
    assert member.error is not None and "refused" in member.error and member.learner.n_learned == 20
    assert challengers.summary()["broken"]["error"] == member.error


def test_challengers_survive_a_checkpoint_and_the_spec_adds_and_drops_them():
    events = list(datasets.Phishing().take(200))
    s = spec(tree=TREE, old=LOGISTIC)
    learner, challengers = run(s, events)
    state = pickle.loads(pickle.dumps(challengers.state()))
    later = ModelSpec.model_validate({**s.model_dump(), "challengers": {"tree": TREE, "new": LOGISTIC}})
    restored = Challengers.from_spec(later, state, champion_learned=200)
    assert set(restored.members) == {"tree", "new"}  # 'old' dropped, 'new' starts fresh
    assert (
        restored.members["tree"].learner.metric_values()
        == challengers.members["tree"].learner.metric_values()
    )
    assert restored.members["new"].learner.n_learned == 0
    assert restored.members["new"].since["champion_learned"] == 200


def test_the_leaderboard_ranks_challengers_and_says_which_is_better_beyond_noise():
    events = list(datasets.Phishing().take(1000))
    s = spec(tree=TREE, same=LOGISTIC)
    learner, challengers = run(s, events)
    cumulative, rolling = learner.metric_values()
    meta = SnapshotMeta(
        model="m",
        task="classification",
        topic="m",
        n_learned=1000,
        metrics=cumulative,
        rolling_metrics=rolling,
        challengers=challengers.summary(),
        version=3,
    )
    board = leaderboard(meta, "Accuracy")
    assert [r.name for r in board.rows][0] == "champion"
    rows = {r.name: r for r in board.rows}
    assert rows["same"].main_difference == 0 and rows["same"].better is None  # identical: no verdict
    assert rows["tree"].paired["n"] == 999  # the tree predicts nothing before its first event


class BrokenAfter:
    """A pipeline stand-in that refuses every event after the first ``n``."""

    def __init__(self, model, n: int) -> None:
        self.model, self.n, self.seen = model, n, 0

    def predict_one(self, x):
        if self.seen >= self.n:
            raise ValueError("refused")
        return self.model.predict_one(x)

    def learn_one(self, x, y):
        self.seen += 1
        self.model.learn_one(x, y)

    def __deepcopy__(self, memo):
        return BrokenAfter(copy.deepcopy(self.model, memo), self.n)
