"""The Docker deployment, checked statically (no Docker engine runs where the tests do).

docker-compose.yml against the Compose spec and against what the code reads;
the two Dockerfiles and their build contexts against the rule that serving
carries no training code (and the reverse); Prometheus and Grafana configs
against the services and the metrics the code registers.
"""

from __future__ import annotations

import json
import re
import tomllib
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import dockerfile
import jsonschema
import pytest
import yaml
from river import datasets

from api.settings import ApiSettings
from model_store.specs import load_specs
from stream.settings import TrainerSettings
from tests.helpers.deployment import (
    REQUIRED,
    build_context,
    dashboard_metric_names,
    dockerignore_rules,
    environment,
    grafana_variable_metric_names,
    host_ports,
    interpolate,
    promql_metric_names,
    registered_metrics,
    scan_packages,
    volume_mounts,
)

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "configs" / "grafana"
# Series Prometheus itself adds to every scrape; a dashboard may query them.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
# Where the contract puts the trainer's metrics (STREAMLEARN_METRICS_PORT's default).
TRAINER_METRICS_PORT = 9100
IMAGES = {
    "serve": {"dockerfile": "docker/serve.Dockerfile", "own": "api", "other": "stream", "service": "api"},
    "train": {"dockerfile": "docker/train.Dockerfile", "own": "stream", "other": "api", "service": "trainer"},
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def stages(path: Path) -> list[list[dockerfile.Command]]:
    """A Dockerfile's build stages, each a list of instructions starting with its FROM."""
    result: list[list[dockerfile.Command]] = []
    for cmd in dockerfile.parse_file(str(path)):
        if cmd.cmd == "FROM":
            result.append([])
        if result:
            result[-1].append(cmd)
    return result


def pinned(image: str) -> bool:
    """``name:tag`` or ``name@sha256:...`` with a tag that is not ``latest``."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


# -- compose: structure and pins -------------------------------------------------------------


def test_compose_file_follows_the_compose_spec(compose: dict):
    """Validated against the Compose specification's JSON schema (vendored by check-jsonschema)."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_the_stack_has_every_part(services: dict):
    assert {"kafka", "redis", "trainer", "api", "proxy", "prometheus", "grafana", "demo"} <= set(services)


def test_every_image_is_pinned_by_tag(services: dict):
    for name, service in services.items():
        image = interpolate(service.get("image", ""))
        assert image, f"{name}: no image name (a built image needs one, with a tag, too)"
        assert pinned(image), f"{name}: image '{image}' is not pinned to a tag"
    for spec in IMAGES.values():
        for stage in stages(ROOT / spec["dockerfile"]):
            base = stage[0].value[0]
            assert pinned(base), f"{spec['dockerfile']}: FROM {base} is not pinned to a tag"


def test_built_images_are_tagged_with_the_project_version(services: dict):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        if "build" in service:
            assert interpolate(service["image"]).endswith(f":{version}"), name


def test_kafka_is_the_broker_version_the_tests_run(services: dict):
    pom = ET.parse(ROOT / "configs" / "kafka" / "pom.xml").getroot()
    version = pom.find("{http://maven.apache.org/POM/4.0.0}properties/{*}kafka.version").text
    assert services["kafka"]["image"] == f"apache/kafka:{version}"


def test_both_images_run_one_python_matching_the_project():
    """Snapshots record the Python version and replicas refuse another: both sides share one base."""
    bases = {stage[0].value[0] for spec in IMAGES.values() for stage in stages(ROOT / spec["dockerfile"])}
    assert len(bases) == 1, bases
    (base,) = bases
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r"python:(\d+\.\d+)", base).group(1)
    assert f">={minor}" in requires.replace(" ", ""), (base, requires)


# -- compose: settings ----------------------------------------------------------------------


def settings_variables() -> set[str]:
    """The environment variable of every field of either side's settings, read from the classes."""
    names = set()
    for settings in (TrainerSettings, ApiSettings):
        prefix = settings.model_config.get("env_prefix", "")
        for field_name, field in settings.model_fields.items():
            alias = field.validation_alias if isinstance(field.validation_alias, str) else None
            names.add((alias or f"{prefix}{field_name}").upper())
    return names


def test_streamlearn_variables_are_settings_the_code_reads(services: dict):
    known = settings_variables()
    assert "STREAMLEARN_REDIS_URL" in known  # the reading itself works
    for name, service in services.items():
        unknown = {k for k in environment(service) if k.startswith("STREAMLEARN_")} - known
        assert not unknown, f"{name}: {sorted(unknown)} are not Settings fields; known: {sorted(known)}"


def test_trainer_and_replicas_share_store_keys_and_secret(services: dict):
    trainer, api = environment(services["trainer"]), environment(services["api"])
    for key in ("STREAMLEARN_REDIS_URL", "STREAMLEARN_KEY_PREFIX", "STREAMLEARN_SIGNING_KEY"):
        assert key in trainer and trainer[key] == api.get(key), key
    assert interpolate(trainer["STREAMLEARN_SIGNING_KEY"]) == REQUIRED  # never a committed secret
    assert interpolate(api["STREAMLEARN_ADMIN_KEY"]) == REQUIRED
    # replicas only produce to Kafka (the prediction log of delayed labels), to the stack's broker
    assert api["STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS"] == trainer["STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS"]


def test_services_point_at_the_stacks_kafka_and_redis(services: dict):
    redis_url = interpolate(environment(services["trainer"])["STREAMLEARN_REDIS_URL"])
    assert re.fullmatch(r"redis://redis:6379/\d+", redis_url), redis_url
    kafka_env = environment(services["kafka"])
    advertised = dict(
        item.split("://") for item in interpolate(kafka_env["KAFKA_ADVERTISED_LISTENERS"]).split(",")
    )
    internal = advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for name in ("trainer", "demo"):
        bootstrap = interpolate(environment(services[name])["STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS"])
        assert bootstrap == internal, (name, bootstrap, internal)
    external_port = advertised["EXTERNAL"].rsplit(":", 1)[1]
    assert external_port in set(host_ports(services["kafka"])), "the advertised host port is published"


def test_models_come_from_one_mounted_directory(services: dict):
    """Trainer, replicas and the demo must agree on the configured models."""
    for name in ("trainer", "api", "demo"):
        models_dir = environment(services[name])["STREAMLEARN_MODELS_DIR"]
        mounts = {target: (source, ro) for source, target, ro in volume_mounts(services[name])}
        assert mounts.get(models_dir) == ("./configs/models", True), (name, mounts)


# -- compose: scaling, ports, data, health -----------------------------------------------------


def test_api_scales_behind_the_proxy(services: dict):
    """`docker compose up --scale api=3`: replicas publish no host port; the proxy spreads requests."""
    api = services["api"]
    assert not api.get("ports") and "container_name" not in api
    assert not any("container_name" in s for s in services.values())
    port = option(command(api), "--port")
    assert f"127.0.0.1:{port}/healthz" in " ".join(api["healthcheck"]["test"])
    conf = (ROOT / "configs" / "nginx" / "api.conf").read_text()
    assert re.search(rf"server\s+api:{port}\s+resolve;", conf), "the proxy re-resolves every replica"
    mounts = {source: target for source, target, _ in volume_mounts(services["proxy"])}
    assert mounts["./configs/nginx/api.conf"] == "/etc/nginx/conf.d/default.conf"
    listen = re.search(r"listen\s+(\d+);", conf).group(1)
    assert any(interpolate(p).endswith(f":{listen}") for p in services["proxy"]["ports"])


def test_host_ports_do_not_clash(services: dict):
    published = [p for s in services.values() for p in host_ports(s)]
    assert len(published) == len(set(published)), published


def test_data_lives_in_named_volumes(compose: dict, services: dict):
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        for source, _target, read_only in volume_mounts(service):
            if source.startswith("."):
                assert source.startswith("./configs/") and read_only, f"{name}: bind {source} rw"
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    data = {name: {t: s for s, t, _ in volume_mounts(services[name])} for name in services}
    kafka_dir = environment(services["kafka"])["KAFKA_LOG_DIRS"]
    assert data["kafka"][kafka_dir] in declared
    redis_cmd = command(services["redis"])
    assert option(redis_cmd, "--appendonly") == "yes"
    assert option(redis_cmd, "--appendfsync") == "always", "an acknowledged version survives a crash"
    assert data["redis"][option(redis_cmd, "--dir")] in declared
    assert data["prometheus"]["/prometheus"] in declared
    assert data["grafana"]["/var/lib/grafana"] in declared


def test_healthchecks_and_start_order(services: dict):
    for name, service in services.items():
        if "demo" in service.get("profiles", []):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for dep, how in depends.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert how["condition"] in (
                "service_healthy",
                "service_started",
                "service_completed_successfully",
            )
            if how["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"

    def healthy(name: str) -> set[str]:
        deps = services[name].get("depends_on", {})
        return {d for d, how in deps.items() if how["condition"] == "service_healthy"}

    assert healthy("trainer") == {"kafka", "redis"}
    assert healthy("api") == {"redis"}
    assert healthy("proxy") == {"api"}
    assert healthy("grafana") == {"prometheus"}


def test_trainer_runs_every_model_and_reports_liveness(services: dict):
    trainer = services["trainer"]
    args = command(trainer)
    assert args[:3] == ["streamlearn", "train", "--all"]
    assert trainer["deploy"]["replicas"] == 2, "an owner and a standby for every model"
    heartbeat = option(args, "--heartbeat")
    assert heartbeat in " ".join(trainer["healthcheck"]["test"])
    home = re.search(r"--home-dir\s+(\S+)", (ROOT / IMAGES["train"]["dockerfile"]).read_text()).group(1)
    assert heartbeat.startswith(home + "/"), "the heartbeat lives in the non-root user's home"


def test_demo_profile_streams_river_datasets_into_configured_models(services: dict):
    demo = services["demo"]
    assert demo["profiles"] == ["demo"]
    script = " ".join(command(demo))
    published = re.findall(r"streamlearn publish --model (\S+) --dataset (\S+) --rate", script)
    specs = load_specs(ROOT / "configs" / "models")
    assert {model for model, _ in published} == set(specs)
    for _model, dataset in published:
        assert isinstance(getattr(datasets, dataset, None), type), f"river.datasets has no {dataset}"


# -- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("side", sorted(IMAGES))
def test_image_holds_only_its_own_side(side: str):
    """The serving image: api/ + model_store/, `serve` extra; the training image the reverse."""
    spec = IMAGES[side]
    path = ROOT / spec["dockerfile"]
    rules = dockerignore_rules(path.with_name(path.name + ".dockerignore"))
    context = build_context(ROOT, rules)
    assert not [p for p in context if p.startswith(spec["other"] + "/")], (
        f"{spec['other']}/ in {side}'s context"
    )
    assert not [p for p in context if p.startswith("tests/") or p.split("/")[-1].startswith(".env")]
    for must in (f"{spec['own']}/__init__.py", "model_store/store.py", "constraints.txt", "pyproject.toml"):
        assert must in context, must

    copied = []
    for stage in stages(path):
        for cmd in stage:
            if cmd.cmd == "COPY" and not any(f.startswith("--from") for f in cmd.flags):
                copied += list(cmd.value[:-1])
    assert {f"{spec['own']}/", "model_store/", "constraints.txt"} <= set(copied)
    for source in copied:
        assert source not in (".", "./", "*"), "copy named paths only"
        assert not source.startswith(spec["other"]), f"{side} image copies {source}"
        prefix = source.rstrip("/")
        assert any(p == prefix or p.startswith(prefix + "/") for p in context), f"{source} not in context"

    runs = " ".join(cmd.value[0] for stage in stages(path) for cmd in stage if cmd.cmd == "RUN")
    assert "-c constraints.txt" in runs
    assert set(re.findall(r"\.\[([\w,]+)\]", runs)) == {side}


@pytest.mark.parametrize("side", sorted(IMAGES))
def test_image_runs_as_a_non_root_user(side: str):
    final = stages(ROOT / IMAGES[side]["dockerfile"])[-1]
    users = [cmd.value[0] for cmd in final if cmd.cmd == "USER"]
    assert users, "no USER in the final stage"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]


@pytest.mark.parametrize("side", sorted(IMAGES))
def test_compose_builds_each_service_from_its_own_dockerfile(services: dict, side: str):
    spec = IMAGES[side]
    build = services[spec["service"]]["build"]
    assert build["context"] == "." and build["dockerfile"] == spec["dockerfile"]
    program = command(services[spec["service"]])[:2]
    assert program == ["streamlearn", "serve" if side == "serve" else "train"]


# -- Prometheus and Grafana --------------------------------------------------------------------


def test_prometheus_scrapes_every_replica_and_the_trainer(services: dict):
    config = yaml.safe_load((ROOT / "configs" / "prometheus" / "prometheus.yml").read_text())
    dns = [sd for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])]
    static = {
        t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]
    }
    api_port = int(option(command(services["api"]), "--port"))
    assert {"names": ["api"], "type": "A", "port": api_port} in [
        {k: sd[k] for k in ("names", "type", "port")} for sd in dns
    ], "one scrape target per API replica"
    assert {"names": ["trainer"], "type": "A", "port": TRAINER_METRICS_PORT} in [
        {k: sd[k] for k in ("names", "type", "port")} for sd in dns
    ], "one scrape target per trainer replica (owner and standby)"
    assert not static - {"localhost:9090"}
    mounts = {s: t for s, t, _ in volume_mounts(services["prometheus"])}
    assert mounts["./configs/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"


def test_grafana_is_provisioned_from_configs(services: dict):
    mounts = {s: t for s, t, _ in volume_mounts(services["grafana"])}
    assert mounts["./configs/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/datasource.yml").read_text())
    (source,) = [d for d in datasources["datasources"] if d["type"] == "prometheus"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in services
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    paths = {p["options"]["path"] for p in providers["providers"]}
    assert mounts["./configs/grafana/dashboards"] in paths, "dashboards mounted where the provider reads"
    home = environment(services["grafana"]).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert (ROOT / "configs/grafana/dashboards" / Path(home).name).exists()
    dashboards = list((GRAFANA / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        uids = {
            ds["uid"]
            for panel in dashboard["panels"]
            for ds in [panel.get("datasource"), *[t.get("datasource") for t in panel.get("targets", [])]]
            if isinstance(ds, dict) and "uid" in ds
        }
        assert uids <= {source["uid"]}, (path.name, uids)


def test_dashboard_queries_only_metrics_the_code_exports():
    """Every metric a provisioned dashboard queries is registered by api/, stream/ or model_store/."""
    exported, unreadable = scan_packages(ROOT, ["api", "stream", "model_store"])
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        queried = dashboard_metric_names(json.loads(path.read_text()))
        assert queried, f"{path.name} queries no metric"
        missing = sorted(queried - exported - PROMETHEUS_SYNTHETIC)
        assert not missing, (
            f"{path.name} queries metrics the code does not register: {missing}; "
            f"registered: {sorted(exported) or 'none'}"
            + (f"; metric names not readable statically at {unreadable}" if unreadable else "")
        )


# -- the readers themselves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le, model) (rate(a_seconds_bucket{model=~"$model"}'
            "[$__rate_interval])))",
            {"a_seconds_bucket"},
        ),
        ("sum(rate(x_total[5m])) by (model) / on(model) group_left(version) y_info", {"x_total", "y_info"}),
        ('label_replace(z, "dst", "$1", "src", "(.*)") > bool 0.5e3 offset 5m', {"z"}),
        ('up{job="api"} unless ignoring(instance) q:recorded', {"up", "q:recorded"}),
        ("sum without (reason) (increase(r_total[1h:5m]))", {"r_total"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]):
    assert promql_metric_names(expr) == names


def test_grafana_variable_queries():
    assert grafana_variable_metric_names('label_values(m_total{job="x"}, model)') == {"m_total"}
    assert grafana_variable_metric_names("label_values(model)") == set()
    assert grafana_variable_metric_names("query_result(topk(3, g))") == {"g"}


def test_registered_metrics_follow_prometheus_client_naming():
    source = """
import collections
import prometheus_client as prom
from prometheus_client import Counter, Histogram as H
from prometheus_client.core import GaugeMetricFamily

EVENTS = Counter("app_events_total", "doc", ["model"])
LATENCY = H("latency", "doc", namespace="app", unit="seconds")
LAG = GaugeMetricFamily("app_lag", "doc", labels=["partition"])
VERSION = prom.Gauge(name="app_version", documentation="doc")
WORDS = collections.Counter("not a metric")
DYNAMIC = Counter(f"app_{kind}", "doc")
OWNED = own(prom.Gauge, "app_owned", "doc")
"""
    names, unreadable = registered_metrics(source, "m.py")
    assert names == {
        "app_events_total",
        "app_events_created",
        "app_latency_seconds_bucket",
        "app_latency_seconds_sum",
        "app_latency_seconds_count",
        "app_latency_seconds_created",
        "app_lag",
        "app_version",
        "app_owned",  # through a builder handed the class and the name
    }
    assert unreadable == ["m.py:12"]  # the f-string name


def test_build_context_follows_dockerignore_rules(tmp_path: Path):
    for rel in ("keep/a.py", "keep/x.pyc", "drop/b.py", "top.txt", "deep/keep/c.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    ignore = tmp_path / "x.dockerignore"
    ignore.write_text("# comment\n*\n!keep/\n!top.txt\n**/*.pyc\n")
    assert build_context(tmp_path, dockerignore_rules(ignore)) == {"keep/a.py", "top.txt"}


def test_readme_documents_every_variable_compose_sets(services: dict):
    readme = (ROOT / "README.md").read_text()
    variables = {k for s in services.values() for k in environment(s) if k.startswith("STREAMLEARN_")}
    raw = (ROOT / "docker-compose.yml").read_text()
    variables |= set(re.findall(r"\$\{(\w+)", raw))  # what users may set in .env
    undocumented = sorted(v for v in variables if f"`{v}`" not in readme and f"{v}=" not in readme)
    assert not undocumented, undocumented
