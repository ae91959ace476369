"""Test-data builders: a model spec, a version's metadata and state.

Each test states only what differs from these defaults, so what it is about stays visible.
"""

from __future__ import annotations

from river import linear_model

from model_store.snapshot import SnapshotMeta, dump_state
from model_store.specs import ModelSpec

FINAL_STEP = {
    "classification": "linear_model.LogisticRegression",
    "regression": "linear_model.LinearRegression",
}
FIRST_METRIC = {"classification": "Accuracy", "regression": "MAE"}


def model_spec(name: str = "m", task: str = "classification", **fields: object) -> ModelSpec:
    """A ModelSpec reading topic ``name``: StandardScaler | LogisticRegression scored by Accuracy
    (LinearRegression by MAE for a regression); ``fields`` replace or add any part."""
    raw = {
        "name": name,
        "topic": name,
        "task": task,
        "pipeline": ["preprocessing.StandardScaler", FINAL_STEP[task]],
        "metrics": [FIRST_METRIC[task]],
        **fields,
    }
    return ModelSpec.model_validate(raw)


def snapshot_meta(n: int = 0, **fields: object) -> SnapshotMeta:
    """Metadata of a version of model "m" that has learned ``n`` events, all from partition 0."""
    return SnapshotMeta(model="m", task="classification", topic="m", n_learned=n, offsets={0: n}, **fields)


def blob(n: int = 0) -> bytes:
    """A version's state: an untrained LogisticRegression that says it learned ``n`` events."""
    return dump_state({"model": linear_model.LogisticRegression(), "n_learned": n})
