"""`make demo` (streamlearn demo): the whole system comes up, learns, serves, and Ctrl-C stops it."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading

import httpx

from stream.local_services import free_port
from tests.helpers.processes import ROOT, wait_until


def test_demo_learns_serves_scores_served_predictions_and_stops_on_ctrl_c():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLEARN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "model_store.cli", "demo", "--port", str(port), "--rate", "40"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:

        def status_line() -> str | None:
            assert proc.poll() is None, "the demo stopped by itself:\n" + "".join(lines[-30:])
            return next((line for line in lines if "served Accuracy" in line and "served MAE" in line), None)

        status = wait_until(
            status_line,
            timeout=180,
            what="a status line with prequential and served accuracy",
        )
        assert "phishing v" in status and "trump_approval v" in status, status
        assert f"dashboard:  http://127.0.0.1:{port}/dashboard" in "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=5).status_code == 200
        # The printed export lines point the CLI at the demo's Redis and key prefix.
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1) for line in lines if line.startswith("export ")
        )
        assert {"STREAMLEARN_REDIS_URL", "STREAMLEARN_KEY_PREFIX"} <= exports.keys(), "".join(lines[:40])
        cli_env = {**env, **{k: shlex.split(v)[0] for k, v in exports.items()}}
        listed = subprocess.run(
            [sys.executable, "-m", "model_store.cli", "versions", "phishing"],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert "SERVED" in listed.stdout and "latest" in listed.stdout, listed.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
        reader.join(timeout=5)
    assert code == 0, "".join(lines[-30:])
    assert "stopped Kafka, Redis, trainers and the API" in "".join(lines)
