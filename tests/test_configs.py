"""The Prometheus and Grafana files in configs/ are valid and name only contract metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from model_store.specs import load_specs
from stream.pipeline import validate_spec

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
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


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"streamlearn_[a-z_]+", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in names}


def test_prometheus_config_is_valid_and_scrapes_api_and_trainer():
    promtool = shutil.which("promtool")
    assert promtool, "install Debian's prometheus (make system-deps)"
    path = CONFIGS / "prometheus" / "prometheus.yml"
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # every replica of the scaled api service, found by Docker's DNS; the trainer on its metrics port
    (api,) = jobs["streamlearn-api"]["dns_sd_configs"]
    assert (api["names"], api["port"]) == (["api"], 8000)
    (trainer,) = jobs["streamlearn-trainer"]["dns_sd_configs"]
    assert (trainer["names"], trainer["port"]) == (["trainer"], 9100)
    rules = yaml.safe_load((CONFIGS / "prometheus" / "alerts.yml").read_text())
    for rule in rules["groups"][0]["rules"]:
        assert metric_names(rule["expr"]) <= CONTRACT, rule["expr"]


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard():
    grafana = CONFIGS / "grafana"
    sources = yaml.safe_load((grafana / "provisioning" / "datasources" / "datasource.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((grafana / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"

    dashboard = json.loads((grafana / "dashboards" / "streamlearn.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used == CONTRACT, (used - CONTRACT, CONTRACT - used)  # every metric shown, none invented
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {source["uid"]}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_shipped_model_yamls_configure_their_monitors():
    specs = load_specs(CONFIGS / "models")
    for spec in specs.values():
        validate_spec(spec)
    assert specs["phishing"].error_rate.thresholds("classification") == (0.2, 0.3)
    assert specs["trump_approval"].error_rate.thresholds("regression") == (1.0, 2.0)
