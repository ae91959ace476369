"""``make bench`` keeps working: every figure measured end to end at tiny sizes.

Only that the benchmark runs and reports a positive number for every figure: no timing
is asserted (a test must not fail because the machine is busy).
"""

from __future__ import annotations

import subprocess
import sys

import orjson

from tests.helpers.processes import ROOT

FIGURES = {
    "trainer_linear",
    "trainer_hoeffding",
    "checkpoint_arf",
    "predict_rps",
    "predict_p99",
    "predict_rps_log_off",
    "predict_rps_healthz",
    "produce_to_servable",
    "rollback_every_replica",
}


def test_bench_smoke_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_bytes()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    figures = {f["key"]: f for f in orjson.loads(out.read_bytes())["figures"]}
    assert FIGURES <= set(figures), sorted(figures)
    for key, figure in figures.items():
        assert figure["value"] > 0, (key, figure)
    memory = [f for key, f in figures.items() if key.startswith("peak_memory_")]
    assert any("API replica" in f["title"] for f in memory)
    assert any("trainer" in f["title"] for f in memory)
    assert figures["trainer_linear"]["extra"]["same_accuracy"]  # the trainer learned the very same events
    assert figures["checkpoint_arf"]["extra"]["pickle_bytes"] > 0
    assert doc.read_bytes() == before  # --smoke writes no doc


def test_checkpoint_bench_drives_the_trainer_and_keeps_the_other_sections(tmp_path):
    """``make bench-checkpoint`` at tiny sizes: it feeds the trainer the fetcher's batches and
    replaces only its own section of the document."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Drift detection\n\nkept\n")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "checkpoint_fork.py"),
            *("--warm", "100", "--events", "400", "--rounds", "1", "--out", str(doc)),
        ],
        capture_output=True,
        text=True,
        timeout=200,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    text = doc.read_text()
    assert "## Drift detection\n\nkept\n" in text
    assert "## Checkpoints off the hot path" in text and "| forked, every 1 s |" in text
