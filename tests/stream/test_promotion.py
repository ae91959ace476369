"""The promotion gate and the auto-rollback policy, on a real redis-server (no Kafka needed)."""

from __future__ import annotations

from model_store.snapshot import SnapshotMeta, dump_state
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore
from stream.promotion import AutoRollback, PromotionGate
from tests.helpers.factories import model_spec


def spec(metric: str = "Accuracy", **promotion) -> ModelSpec:
    return model_spec(pipeline=["linear_model.LogisticRegression"], metrics=[metric], promotion=promotion)


def candidate(rolling: float | None, metric: str = "Accuracy") -> SnapshotMeta:
    return SnapshotMeta(
        model="m", task="classification", topic="m", n_learned=1, rolling_metrics={metric: rolling}
    )


def publish_through(gate: PromotionGate, store: CheckpointStore, rolling: float, bigger: bool = True):
    """What the trainer's Checkpointer does: ask the gate, publish with its decision."""
    decision = gate.decide(candidate(rolling, gate.metric), bigger)
    blob = dump_state({"model": None})
    meta = store.publish(
        candidate(rolling, gate.metric), blob, keep=50, promote=decision.promote, hold_reason=decision.reason
    )
    return meta, decision


def test_gate_holds_a_version_worse_than_the_promoted_one_by_more_than_the_tolerance(store: CheckpointStore):
    gate = PromotionGate(spec(tolerance=0.05), store)
    v1, _ = publish_through(gate, store, 0.90)
    v2, ok = publish_through(gate, store, 0.86)  # 0.04 worse: within tolerance
    v3, held = publish_through(gate, store, 0.70)
    v4, _ = publish_through(gate, store, 0.83)  # compared with v2 (the promoted), 0.03 worse
    assert ok.promote and ok.served_before == v1.version
    assert not held.promote and held.served_before == v2.version
    assert "rolling Accuracy 0.7000 is worse than promoted v2's 0.8600" in held.reason
    assert store.held("m") == {v3.version: held.reason}
    assert store.served_pointer("m").version == v4.version


def test_gate_respects_smaller_is_better_metrics(store: CheckpointStore):
    gate = PromotionGate(spec("MAE", tolerance=0.1), store)
    publish_through(gate, store, 1.0, bigger=False)
    _, better = publish_through(gate, store, 0.5, bigger=False)
    _, worse = publish_through(gate, store, 0.65, bigger=False)
    assert better.promote and not worse.promote


def test_without_a_tolerance_every_version_is_promoted(store: CheckpointStore):
    gate = PromotionGate(spec(), store)
    publish_through(gate, store, 0.9)
    last, decision = publish_through(gate, store, 0.1)
    assert decision.promote and store.served_pointer("m").version == last.version


def published(store: CheckpointStore, rolling: float) -> SnapshotMeta:
    return store.publish(candidate(rolling), dump_state({"model": None}), keep=50)


def test_auto_rollback_pins_the_last_healthy_version_when_an_alert_follows_a_promotion(
    store: CheckpointStore,
):
    policy = AutoRollback(spec(auto_rollback=True, alert_drop=0.2), store)
    served = None
    for rolling in (0.84, 0.85, 0.86, 0.91):  # v1..v4: each served through a calm window
        meta = published(store, rolling)
        assert policy.after_checkpoint(meta, served) is None
        served = meta.version
    bad = published(store, 0.11)  # the window while v4 served went wrong
    assert policy.after_checkpoint(bad, served) == 3
    assert store.pinned("m") == 3
    reason = store.pin_reason("m")
    assert reason.startswith("auto-rollback: rolling Accuracy 0.1100 at v5")
    assert "v4 was promoted after v3" in reason
    assert store.audit_log("m", 1)[0]["by"] == "auto-rollback"
    # while a pin holds, the policy leaves it alone
    assert policy.after_checkpoint(published(store, 0.05), bad.version) is None
    assert store.pinned("m") == 3


def test_auto_rollback_ignores_an_alert_while_the_healthy_version_still_serves(store: CheckpointStore):
    policy = AutoRollback(spec(auto_rollback=True, alert_drop=0.2), store)
    first = published(store, 0.9)
    policy.after_checkpoint(first, None)
    second = published(store, 0.9)
    policy.after_checkpoint(second, first.version)  # v1 proved healthy
    assert policy.after_checkpoint(published(store, 0.1), first.version) is None  # v1 still served
    assert store.pinned("m") is None


def test_auto_rollback_takes_its_alerts_from_a_pluggable_source(store: CheckpointStore):
    """The hook the error-rate monitor uses: any callable meta -> reason or None."""
    alerts = {3: "error rate 0.62 > 0.30 over the last 200 events"}
    policy = AutoRollback(spec(auto_rollback=True), store, alert_source=lambda meta: alerts.get(meta.version))
    served = None
    for _ in range(3):
        meta = published(store, 0.9)  # the metric never drops: only the monitor alerts
        policy.after_checkpoint(meta, served)
        served = meta.version
    assert store.pinned("m") == 1
    assert "error rate 0.62" in store.pin_reason("m")
