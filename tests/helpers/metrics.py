"""The metric contract: every series the trainer and the API export, by name.

configs/ (Prometheus rules, Grafana) may name only these, and the trainer
registers exactly ``TRAINER_METRICS``.
"""

from __future__ import annotations

TRAINER_METRICS = {
    "streamlearn_events_consumed_total",
    "streamlearn_events_learned_total",
    "streamlearn_events_rejected_total",
    "streamlearn_dead_letters_failed_total",
    "streamlearn_dead_letters_unacknowledged",
    "streamlearn_trainer_owns_model",
    "streamlearn_trainer_lease_epoch",
    "streamlearn_trainer_lease_acquisitions_total",
    "streamlearn_checkpoints_fenced_total",
    "streamlearn_checkpoint_incompatible",
    "streamlearn_trainer_restarts_total",
    "streamlearn_label_joins_pending",
    "streamlearn_challenger_metric",
    "streamlearn_challenger_p_value",
    "streamlearn_challenger_disabled",
    "streamlearn_challenger_served_metric",
    "streamlearn_challenger_served_p_value",
    "streamlearn_challenger_served_requests",
    "streamlearn_fleet_members",
    "streamlearn_fleet_share",
    "streamlearn_learn_seconds",
    "streamlearn_prequential_metric",
    "streamlearn_error_rate",
    "streamlearn_drift_detections_total",
    "streamlearn_checkpoint_seconds",
    "streamlearn_checkpoint_bytes",
    "streamlearn_checkpoint_retained_bytes",
    "streamlearn_checkpoint_store_full",
    "streamlearn_consumer_lag",
    "streamlearn_trainer_version",
    "streamlearn_served_metric",
    "streamlearn_served_scored_total",
    "streamlearn_label_delay_seconds",
    "streamlearn_label_joins_total",
}
API_METRICS = {
    "streamlearn_predictions_total",
    "streamlearn_predict_seconds",
    "streamlearn_served_version",
    "streamlearn_feature_drift_score",
    "streamlearn_snapshots_refused_total",
    "streamlearn_snapshot_load_seconds",
}
CONTRACT = TRAINER_METRICS | API_METRICS
