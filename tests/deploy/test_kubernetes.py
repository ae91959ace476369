"""The Kubernetes manifests (deploy/kubernetes) are valid against the Kubernetes schemas and
agree with the code: probes on real routes, settings the code reads, the shipped model YAMLs."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from api.settings import ApiSettings
from stream.settings import TrainerSettings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DOCS = [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def kind(name: str) -> list[dict]:
    return [d for d in DOCS if d["kind"] == name]


def named(kind_: str, name: str) -> dict:
    (doc,) = [d for d in kind(kind_) if d["metadata"]["name"] == name]
    return doc


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_validates_against_the_kubernetes_schema(doc: dict):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_an_invalid_manifest_is_refused():
    broken = {**named("Deployment", "streamlearn-api"), "spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_parts_an_operator_needs_are_there():
    kinds = {d["kind"] for d in DOCS}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"} <= kinds
    assert {d["metadata"]["name"] for d in kind("PodDisruptionBudget")} == {
        "streamlearn-api",
        "streamlearn-trainer",
    }
    hpa = named("HorizontalPodAutoscaler", "streamlearn-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "streamlearn-api"


def test_selectors_find_their_pods():
    for deployment in kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in kind("Deployment")]
    for selector in [d["spec"]["selector"]["matchLabels"] for d in kind("PodDisruptionBudget")] + [
        d["spec"]["selector"] for d in kind("Service")
    ]:
        assert sum(selector.items() <= p.items() for p in pods) == 1, selector


def test_trainers_run_as_owner_and_standby_and_stop_cleanly():
    trainer = named("Deployment", "streamlearn-trainer")
    assert trainer["spec"]["replicas"] == 2  # one owns each model, the other is its standby
    pod = trainer["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:3] == ["streamlearn", "train", "--all"]
    heartbeat = container["args"][container["args"].index("--heartbeat") + 1]
    assert heartbeat in " ".join(container["livenessProbe"]["exec"]["command"])
    assert pod["terminationGracePeriodSeconds"] >= 30  # room for the final checkpoint


def test_api_probes_use_the_health_routes():
    (container,) = named("Deployment", "streamlearn-api")["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_settings_are_ones_the_code_reads_and_references_exist():
    fields = {f"STREAMLEARN_{n.upper()}" for s in (TrainerSettings, ApiSettings) for n in s.model_fields}
    config = named("ConfigMap", "streamlearn-settings")["data"]
    secret = named("Secret", "streamlearn-keys")["stringData"]
    assert set(config) | set(secret) <= fields
    names = {(d["kind"], d["metadata"]["name"]) for d in DOCS}
    for deployment in kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for ref in pod["containers"][0]["envFrom"]:
            if "configMapRef" in ref:
                assert ("ConfigMap", ref["configMapRef"]["name"]) in names
            else:
                assert ("Secret", ref["secretRef"]["name"]) in names
        for volume in pod.get("volumes", []):
            assert ("ConfigMap", volume["configMap"]["name"]) in names


def test_the_models_config_map_holds_the_shipped_model_yamls():
    data = named("ConfigMap", "streamlearn-models")["data"]
    shipped = {p.name: p.read_text() for p in (ROOT / "configs" / "models").glob("*.yaml")}
    assert data == shipped
