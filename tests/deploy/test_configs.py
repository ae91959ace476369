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
from tests.helpers.metrics import CONTRACT

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


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
