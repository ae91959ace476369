"""A real Prometheus server (Debian's prometheus) on loopback, scraping given targets."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stream.local_services import free_port
from tests.helpers.processes import stop, wait_until


@contextmanager
def prometheus(directory: Path, jobs: dict[str, str], interval: str = "1s") -> Iterator[str]:
    """Scrape ``jobs`` (job name -> host:port) every ``interval``; yield the server's base URL."""
    binary = shutil.which("prometheus")
    assert binary, "install Debian's prometheus (make system-deps)"
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in jobs.items()
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (directory / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url, proc), timeout=60, what="Prometheus ready")
        yield url
    finally:
        stop(proc, timeout=15)


def _ready(url: str, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, f"prometheus exited with {proc.returncode}"
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def query(url: str, promql: str) -> list[dict]:
    """The result vector of an instant query."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, None when absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None
