from pathlib import Path

import pytest
from river import compose, linear_model, optim, preprocessing

from model_store.specs import ModelSpec, SpecError, load_spec, load_specs
from stream.pipeline import build_pipeline, resolve_river_class, validate_spec
from tests.helpers.factories import model_spec

ROOT = Path(__file__).resolve().parents[2]


def spec(**overrides) -> ModelSpec:
    pipeline = ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {"l2": 0.01}}]
    return model_spec(**{"pipeline": pipeline, "metrics": ["Accuracy"], **overrides})


def test_shipped_model_configs_are_valid_and_cover_both_tasks():
    specs = load_specs(ROOT / "configs" / "models")
    assert {s.task for s in specs.values()} == {"classification", "regression"}
    for s in specs.values():
        validate_spec(s)


def test_pipeline_is_built_with_parameters_and_nested_objects():
    model = build_pipeline(
        spec(
            pipeline=[
                "preprocessing.StandardScaler",
                {"linear_model.LogisticRegression": {"optimizer": {"optim.SGD": {"lr": 0.05}}, "l2": 0.01}},
            ]
        )
    )
    assert isinstance(model, compose.Pipeline)
    steps = list(model.steps.values())
    assert isinstance(steps[0], preprocessing.StandardScaler)
    assert isinstance(steps[1], linear_model.LogisticRegression)
    assert isinstance(steps[1].optimizer, optim.SGD)
    assert steps[1].optimizer.learning_rate == 0.05
    assert steps[1].l2 == 0.01


@pytest.mark.parametrize(
    "path",
    [
        "os.system",
        "subprocess.Popen",
        "builtins.eval",
        "pickle.loads",
        "__import__",
        "river.linear_model",
        "linear_model.__class__",
        "linear_model._base.GLM",
    ],
)
def test_non_river_classes_are_rejected(path):
    with pytest.raises(SpecError):
        resolve_river_class(path)


def test_unknown_river_class_names_the_step():
    with pytest.raises(SpecError, match=r"pipeline\[1\].*linear_model has no class Nope|has no class Nope"):
        build_pipeline(spec(pipeline=["preprocessing.StandardScaler", "linear_model.Nope"]))


def test_bad_parameters_name_the_class():
    with pytest.raises(SpecError, match="LogisticRegression"):
        build_pipeline(spec(pipeline=[{"linear_model.LogisticRegression": {"no_such_param": 1}}]))


def test_final_step_must_fit_the_task():
    with pytest.raises(SpecError, match="not a Regressor"):
        build_pipeline(spec(task="regression"))


def test_metric_must_fit_the_task():
    with pytest.raises(SpecError, match="MAE does not fit"):
        validate_spec(spec(metrics=["MAE"]))


def test_yaml_errors_name_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntopic: x\ntask: clustering\npipeline: [a.B]\nmetrics: [Accuracy]\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: field 'task'"):
        load_spec(path)


@pytest.mark.parametrize(
    ("task", "final", "main"),
    [
        ("classification", "linear_model.LogisticRegression", "Accuracy"),
        ("regression", "linear_model.LinearRegression", "MAE"),
    ],
)
def test_a_yaml_without_metrics_gets_the_task_default(tmp_path, task, final, main):
    path = tmp_path / "m.yaml"
    path.write_text(f"name: m\ntopic: m\ntask: {task}\npipeline: [{final}]\n")
    loaded = load_spec(path)
    assert loaded.metrics == [main]
    validate_spec(loaded)  # the default fits the task


def test_unknown_or_empty_metrics_stay_errors(tmp_path):
    with pytest.raises(SpecError, match="'Acuracy' is not a river.metrics class"):
        validate_spec(spec(metrics=["Acuracy"]))
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: m\ntopic: m\ntask: classification\npipeline: [linear_model.LogisticRegression]\nmetrics: []\n"
    )
    with pytest.raises(SpecError, match="field 'metrics'"):
        load_spec(path)
