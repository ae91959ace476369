"""The auto-rollback policy hears the error-rate monitor, not only a drop of the metric."""

from __future__ import annotations

from model_store.snapshot import SnapshotMeta
from stream.promotion import AutoRollback, error_rate_alert
from tests.helpers.factories import model_spec

SPEC = model_spec(
    pipeline=["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}],
    promotion={"auto_rollback": True},
)


def meta(version: int, state: str, windows: dict[str, float], rolling: float = 0.9) -> SnapshotMeta:
    error = {"state": state, "warning": 0.2, "alert": 0.3, "windows": windows, "cumulative": 0.1, "n": 10}
    return SnapshotMeta(
        model="m",
        version=version,
        task="classification",
        topic="m",
        n_learned=10,
        rolling_metrics={"Accuracy": rolling},
        monitors={"error_rate": error, "concept_drift": {"detector": "drift.ADWIN", "state": "ok"}},
    )


def test_an_error_rate_alert_names_the_windows_over_the_limit():
    reason = error_rate_alert(meta(7, "alert", {"1000": 0.35, "10000": 0.12}))
    assert reason == "error rate in alert at v7: 0.350 over the last 1000 events (alert at 0.3)"
    assert error_rate_alert(meta(7, "warning", {"1000": 0.25})) is None
    assert error_rate_alert(meta(7, "ok", {"1000": 0.05})) is None


def test_the_default_alert_source_hears_the_error_rate_monitor_with_a_steady_metric():
    policy = AutoRollback(SPEC, store=None)
    policy.last_healthy = (3, 0.9)
    assert policy.alert_source(meta(5, "ok", {"1000": 0.1})) is None
    assert "error rate in alert" in policy.alert_source(meta(5, "alert", {"1000": 0.4}, rolling=0.9))
    # and still hears a drop of the main metric with a quiet monitor
    assert "worse than" in policy.alert_source(meta(5, "ok", {"1000": 0.1}, rolling=0.5))
