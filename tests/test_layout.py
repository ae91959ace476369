"""Training and serving stay separate programs, with separate installs (README, docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from stream.local_services import RedisServer

ROOT = Path(__file__).resolve().parents[1]
TRAINING_ONLY = {"stream", "tqdm", "crc32c", "confluent_kafka"}
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
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                if node.args and isinstance(node.args[0], ast.Constant):
                    roots.add(str(node.args[0].value).split(".")[0])
        found[str(path.relative_to(ROOT))] = roots
    return found


def test_api_never_imports_training_code():
    offenders = {f: r & TRAINING_ONLY for f, r in imported_roots("api").items() if r & TRAINING_ONLY}
    assert not offenders, offenders


def test_api_uses_kafka_for_its_prediction_log_producer_only():
    """The serving side may produce to Kafka (the prediction log); it never consumes."""
    for path in (ROOT / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "kafka" for a in node.names), path
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "kafka":
                assert {a.name for a in node.names} <= {"KafkaProducer"}, (path, node.module)
        assert "KafkaConsumer" not in path.read_text(), path


def test_model_store_imports_neither_side_at_module_level():
    for path in (ROOT / "model_store").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: the CLI dispatches lazily
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            assert not set(names) & (TRAINING_ONLY | SERVING_ONLY | {"kafka"}), f"{path.name}: {names}"


def test_stream_never_imports_serving_code():
    offenders = {f: r & SERVING_ONLY for f, r in imported_roots("stream").items() if r & SERVING_ONLY}
    assert not offenders, offenders


def test_dependency_groups_keep_the_sides_apart():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split("[")[0].split("=")[0] for d in project["dependencies"]}
    extras = project["optional-dependencies"]
    serve = {d.split("[")[0] for d in extras["serve"]}
    train = {d.split("[")[0] for d in extras["train"]}
    assert "kafka-python" not in core  # the serving side gets it for its producer only
    assert not {"crc32c", "confluent-kafka"} & (core | serve)  # consuming is the trainer's business
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
        from model_store.settings import Settings
        from model_store.specs import load_specs
        settings = Settings(redis_url="{redis_server.url}", models_dir="{ROOT / "configs" / "models"}")
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
