"""Training and serving stay separate programs, with separate installs (README, docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from stream.local_services import RedisServer

ROOT = Path(__file__).resolve().parents[2]
TRAINING_ONLY = {"stream", "tqdm", "crc32c", "kafka"}  # kafka: kafka-python
# What the serving side may take from confluent-kafka: the prediction log's producer.
SERVING_KAFKA_NAMES = {"Producer", "KafkaError", "KafkaException"}
SERVING_ONLY = {"api", "fastapi", "uvicorn", "starlette"}


def imported_roots(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of ``package`` imports (lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        roots: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and _dynamic_import(node):
                if node.args and isinstance(node.args[0], ast.Constant):
                    roots.add(str(node.args[0].value).split(".")[0])
                else:
                    roots.add("<a module named at run time>")
        found[str(path.relative_to(ROOT))] = roots
    return found


def _dynamic_import(call: ast.Call) -> bool:
    """``importlib.import_module(...)``, ``import_module(...)``, ``__import__(...)``."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    return name in {"import_module", "__import__"}


def test_the_import_scan_sees_dynamic_imports(tmp_path):
    tree = ast.parse("import importlib\nimportlib.import_module('stream.trainer')\n__import__('api.main')\n")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [_dynamic_import(c) for c in calls] == [True, True]


def test_api_never_imports_training_code():
    offenders = {f: r & TRAINING_ONLY for f, r in imported_roots("api").items() if r & TRAINING_ONLY}
    assert not offenders, offenders


def test_api_uses_kafka_for_its_prediction_log_producer_only():
    """The serving side may produce to Kafka (the prediction log); it never consumes."""
    for path in (ROOT / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "confluent_kafka" for a in node.names), path
            elif isinstance(node, ast.ImportFrom) and node.module and node.module == "confluent_kafka":
                assert {a.name for a in node.names} <= SERVING_KAFKA_NAMES, (path, node.module)
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("confluent_kafka."), (path, node.module)
        assert "Consumer" not in path.read_text(), path


def test_model_store_imports_neither_side_in_any_way():
    """Not at module level, not lazily, not through importlib or __import__, nor by naming a side's
    module in a string: each side registers its own CLI commands (entry points, pyproject.toml)."""
    forbidden = TRAINING_ONLY | SERVING_ONLY | {"confluent_kafka", "<a module named at run time>"}
    offenders = {f: r & forbidden for f, r in imported_roots("model_store").items() if r & forbidden}
    assert not offenders, offenders
    for path in (ROOT / "model_store").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(("stream.", "api.")), (path.name, node.value)


def test_each_side_registers_its_own_commands():
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    targets = {v.split(":")[0].split(".")[0] for v in entry_points["streamlearn.commands"].values()}
    assert targets == {"stream", "api"}


def test_stream_never_imports_serving_code():
    offenders = {f: r & SERVING_ONLY for f, r in imported_roots("stream").items() if r & SERVING_ONLY}
    assert not offenders, offenders


def test_dependency_groups_keep_the_sides_apart():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split("[")[0].split("=")[0] for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    serve = {d.split("[")[0] for d in extras["serve"]}
    train = {d.split("[")[0] for d in extras["train"]}
    assert not {"kafka-python", "crc32c"} & (core | serve)  # consuming is the trainer's business
    assert "confluent-kafka" in serve and "confluent-kafka" not in core  # the prediction log's producer
    assert not {"fastapi", "uvicorn"} & (core | train)
    assert "river" in core  # one River, pinned in constraints.txt for both sides
    pins = (ROOT / "constraints.txt").read_text()
    assert "\nriver==" in pins


def test_serving_runs_without_kafka_or_training_code(tmp_path):
    """Import and run the app in a fresh interpreter where kafka, tqdm and stream cannot load."""
    redis_server = RedisServer(tmp_path / "redis").start()
    script = textwrap.dedent(f"""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {sorted(TRAINING_ONLY)!r}:
                    raise ImportError("serving install has no " + name)
        sys.meta_path.insert(0, Block())
        from fastapi.testclient import TestClient
        from api.main import create_app
        from api.settings import ApiSettings
        from model_store.specs import load_specs
        settings = ApiSettings(redis_url="{redis_server.url}", models_dir="{ROOT / "configs" / "models"}")
        with TestClient(create_app(settings)) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 503
            r = client.post("/models/phishing/predict", json={{"features": {{"a": 1}}}})
            assert r.status_code == 503, r.text
        blocked = [m for m in sys.modules if m.split(".")[0] in {sorted(TRAINING_ONLY)!r}]
        assert not blocked, blocked
        print("serving ok")
    """)
    try:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
    finally:
        redis_server.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "serving ok" in result.stdout


def test_the_cli_of_a_serving_install_has_the_serving_and_shared_commands():
    """An image without stream/ (docker/serve.Dockerfile) still runs `streamlearn serve` and the
    version commands; the training commands are simply not there."""
    script = textwrap.dedent("""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "stream":
                    raise ModuleNotFoundError("no stream/ in this install", name=name)
        sys.meta_path.insert(0, Block())
        from model_store.cli import build_parser
        (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
        print(" ".join(sorted(sub.choices)))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    shared = ["status", "leaderboard", "promote", "versions", "rollback", "unpin", "tag"]
    assert result.stdout.split() == sorted(["serve", "score", *shared])
