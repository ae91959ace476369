"""The served column: each challenger scored on the logged features of served predictions whose
labels joined, beside what was served, over the very same requests."""

from __future__ import annotations

import pickle

from river import compose, datasets, linear_model, metrics, preprocessing, tree

from model_store.leaderboard import leaderboard
from model_store.snapshot import SnapshotMeta
from model_store.specs import ModelSpec
from stream.challengers import Challengers, PairedTest
from stream.joiner import Joined
from stream.learner import Learner
from stream.served_comparison import ServedComparison
from stream.served_scores import ServedScores
from tests.helpers.factories import model_spec

TREE = [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]
L2 = ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {"l2": 0.01}}]
BROKEN = [{"feature_extraction.BagOfWords": {"on": "absent"}}, "naive_bayes.MultinomialNB"]


def spec(metric: str = "Accuracy", task: str = "classification", **challengers) -> ModelSpec:
    return model_spec(
        task=task, metrics=[metric], challengers=challengers, delayed_labels={"log_predictions": True}
    )


def served_stream(n: int, skip: int = 0) -> list[Joined]:
    """Joined requests whose served predictions came from a model that learns nothing more (as a
    pinned version would serve): they differ from what any trainer-side learner predicts."""
    served = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    rows = list(datasets.Phishing().take(n + skip))
    for x, y in rows[:skip]:
        served.learn_one(x, y)
    return [
        Joined(f"r{i}", x, y, served.predict_one(x), served.predict_proba_one(x), 1, 100)
        for i, (x, y) in enumerate(rows[skip:])
    ]


def test_a_challenger_scores_as_plain_river_on_the_joined_requests_beside_what_was_served():
    s = spec(tree=TREE, l2=L2)
    champion, challengers = Learner.from_spec(s), Challengers.from_spec(s)
    joins = served_stream(300, skip=40)
    for j in joins:
        challengers.learn_joined(j, champion.learn_one(j.features, j.label))

    references = {
        "tree": tree.HoeffdingTreeClassifier(grace_period=50),
        "l2": compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(l2=0.01)),
    }
    summary = challengers.summary()
    for name, model in references.items():
        mine, served, test, n = metrics.Accuracy(), metrics.Accuracy(), PairedTest("classification"), 0
        for j in joins:
            y_pred = model.predict_one(j.features)  # before it learns the label: test-then-train
            model.learn_one(j.features, j.label)
            if y_pred is None:
                continue
            mine.update(j.label, y_pred)
            served.update(j.label, j.prediction)
            test.update(j.label, j.prediction, y_pred)
            n += 1
        row = summary[name]["served"]
        assert (row["value"], row["champion"], row["n"]) == (mine.get(), served.get(), n), name
        assert row["paired"] == test.result(), name
    assert summary["tree"]["served"]["n"] == 299  # a tree predicts nothing before its first label
    assert summary["l2"]["served"]["n"] == 300


def test_a_metric_on_probabilities_scores_both_sides_probabilities():
    s = spec("ROCAUC", l2=L2)
    champion, challengers = Learner.from_spec(s), Challengers.from_spec(s)
    joins = served_stream(200, skip=40)
    for j in joins:
        challengers.learn_joined(j, champion.learn_one(j.features, j.label))
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(l2=0.01))
    mine, served = metrics.ROCAUC(), metrics.ROCAUC()
    for j in joins:
        proba = model.predict_proba_one(j.features)
        model.learn_one(j.features, j.label)
        mine.update(j.label, proba)
        served.update(j.label, j.proba)
    row = challengers.summary()["l2"]["served"]
    assert row["value"] == mine.get() and row["champion"] == served.get()
    scores = ServedScores(s)
    for j in joins:
        scores.update(j)
    assert row["champion"] == scores.summary({})["overall"]  # the champion's served figure, same requests


def test_a_regressor_gets_a_paired_test_on_absolute_errors():
    s = spec("MAE", "regression", lr=["preprocessing.StandardScaler", "linear_model.LinearRegression"])
    comparison = ServedComparison(s)
    for i in range(200):
        comparison.update(Joined(str(i), {"x": i}, 10.0, 10.0 + (i % 5), None, 1, 5), 10.0 + (i % 5) * 0.5)
    summary = comparison.summary()
    assert summary["paired"]["test"] == "paired-z" and summary["paired"]["difference"] > 0
    assert summary["paired"]["p_value"] < 1e-6 and summary["value"] < summary["champion"]


def test_requests_either_side_cannot_predict_are_left_out_of_both():
    comparison = ServedComparison(spec())
    comparison.update(Joined("a", {}, True, None, None, 1, 5), True)  # nothing was served
    comparison.update(Joined("b", {}, True, True, None, 1, 5), None)  # the challenger predicts nothing
    comparison.update(Joined("c", {}, True, True, None, 1, 5), {})  # no class seen yet
    assert comparison.summary()["n"] == 0 and comparison.summary()["value"] is None
    comparison.update(Joined("d", {}, True, False, None, 1, 5), {True: 0.9, False: 0.1})
    assert comparison.summary() | {"paired": None} == {
        "metric": "Accuracy",
        "value": 1.0,
        "champion": 0.0,
        "n": 1,
        "paired": None,
    }


def test_the_comparison_survives_a_checkpoint_and_a_challenger_added_later_scores_from_then_on():
    s = spec(l2=L2)
    champion, challengers = Learner.from_spec(s), Challengers.from_spec(s)
    joins = served_stream(200, skip=40)
    scores = ServedScores(s)
    for j in joins[:100]:
        challengers.learn_joined(j, champion.learn_one(j.features, j.label))
        scores.update(j)
    state = pickle.loads(pickle.dumps(challengers.state()))
    later = ModelSpec.model_validate({**s.model_dump(), "challengers": {"l2": L2, "tree": TREE}})
    restored = Challengers.from_spec(later, state, champion.n_learned)
    assert restored.summary()["l2"]["served"] == challengers.summary()["l2"]["served"]
    assert restored.summary()["tree"]["served"]["n"] == 0  # added after 100 joins: none counted for it
    for j in joins[100:]:
        restored.learn_joined(j, champion.learn_one(j.features, j.label))
        scores.update(j)
    rows = restored.summary()
    assert rows["l2"]["served"]["n"] == 200 and rows["l2"]["served"]["champion"] == scores.overall.get()
    # the late one is compared with what was served on its own requests, not on all 200; its
    # first one it cannot predict (a tree knows no class before its first label)
    served_since = metrics.Accuracy()
    for j in joins[101:]:
        served_since.update(j.label, j.prediction)
    assert rows["tree"]["served"]["n"] == 99
    assert rows["tree"]["served"]["champion"] == served_since.get() != scores.overall.get()


def test_a_disabled_challenger_is_not_scored_and_the_leaderboard_shows_the_served_column():
    s = spec(l2=L2, broken=BROKEN)
    champion, challengers = Learner.from_spec(s), Challengers.from_spec(s)
    scores = ServedScores(s)
    for j in served_stream(100, skip=40):
        challengers.learn_joined(j, champion.learn_one(j.features, j.label))
        scores.update(j)
    rows = challengers.summary()
    assert rows["broken"]["error"].startswith("KeyError") and rows["broken"]["served"]["n"] == 0
    assert challengers.points()["broken"] == {"rolling": {"Accuracy": 0.0}, "disabled": True}
    cumulative, rolling = champion.metric_values()
    meta = SnapshotMeta(
        model="m",
        task="classification",
        topic="m",
        n_learned=100,
        metrics=cumulative,
        rolling_metrics=rolling,
        challengers=rows,
        served=scores.summary({"hit": 100}),
        version=2,
    )
    board = {r.name: r for r in leaderboard(meta, "Accuracy").rows}
    assert board["champion"].served.value == scores.overall.get() and board["champion"].served.n == 100
    l2 = board["l2"].served
    assert (l2.value, l2.champion, l2.n) == (
        rows["l2"]["served"]["value"],
        rows["l2"]["served"]["champion"],
        100,
    )
    assert l2.difference == l2.value - l2.champion and l2.paired["test"] == "mcnemar"
    assert board["broken"].served.n == 0 and board["broken"].served.better is None
    no_labels = meta.model_copy(update={"served": {}})
    assert all(r.served is None for r in leaderboard(no_labels, "Accuracy").rows)
