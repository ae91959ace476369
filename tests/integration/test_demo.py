"""`make demo` (streamlearn demo): the whole system comes up, learns, serves, and Ctrl-C stops it."""

from __future__ import annotations

import os
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
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=90)
        reader.join(timeout=5)
    assert code == 0, "".join(lines[-30:])
    assert "stopped Kafka, Redis, trainers and the API" in "".join(lines)
