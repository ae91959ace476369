"""/predict figure: requests per second of ``POST /models/{name}/predict`` against
``GET /healthz`` of the same replica (a trivial async endpoint: the framework's floor),
16 connections from wrk, and the predict latency percentiles wrk reports.

wrk runs on the same machine as the replica, as a client would on a small host; the
two endpoints alternate, so both see the same load from the rest of the machine.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.harness import BenchError, Child, require_tool
from bench.report import Figure
from bench.stats import median

CONNECTIONS, THREADS = 16, 2
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec and the 50% / 99% lines of ``wrk --latency``; errors refuse the run."""
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad:
        raise BenchError(f"wrk got {bad.group(1)} error responses:\n{output}")
    errors = re.search(r"Socket errors: (.*)", output)
    if errors and any(int(n) for n in re.findall(r"\d+", errors.group(1))):
        raise BenchError(f"wrk had socket errors:\n{output}")
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"cannot read wrk's output:\n{output}")
    return WrkResult(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)))


def predict_script(path: Path, body: dict) -> Path:
    """A wrk Lua script sending one Phishing instance as a JSON POST."""
    payload = orjson.dumps(body).decode().replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{payload}'\nwrk.headers['Content-Type'] = 'application/json'\n"
    )
    return path


def wrk(url: str, seconds: float, script: Path | None = None) -> WrkResult:
    cmd = [require_tool("wrk"), f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    return parse_wrk(done.stdout)


def predict_figures(
    replica: Child, model: str, body: dict, workdir: Path, seconds: float, repeat: int, warmup: float
) -> list[Figure]:
    """Figure 3: the rps ratio (bar >= 0.80) and the predict p99 (bar <= 10 ms)."""
    base = f"http://127.0.0.1:{replica.port}"
    script = predict_script(workdir / "predict.lua", body)
    predict_url, trivial_url = f"{base}/models/{model}/predict", f"{base}/healthz"
    if warmup:
        wrk(predict_url, warmup, script)
    predicts: list[WrkResult] = []
    trivials: list[WrkResult] = []
    for i in range(repeat):
        order = ("predict", "trivial") if i % 2 == 0 else ("trivial", "predict")
        for side in order:
            if side == "predict":
                predicts.append(wrk(predict_url, seconds, script))
            else:
                trivials.append(wrk(trivial_url, seconds))
            replica.check()
    ratios = [p.rps / t.rps for p, t in zip(predicts, trivials, strict=True)]
    p99s = [p.p99_ms for p in predicts]

    def summary(results: list[WrkResult]) -> str:
        rps, p50, p99 = (median([getattr(r, f) for r in results]) for f in ("rps", "p50_ms", "p99_ms"))
        return f"{rps:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms"

    extra = {
        "predict": [r.__dict__ for r in predicts],
        "healthz": [r.__dict__ for r in trivials],
        "connections": CONNECTIONS,
        "seconds": seconds,
    }
    return [
        Figure(
            key="predict_rps",
            title=f"/predict req/s / GET /healthz req/s, {CONNECTIONS} connections",
            value=median(ratios),
            measured=summary(predicts),
            baseline=summary(trivials),
            bar=(">=", 0.80),
            runs=ratios,
            extra=extra,
        ),
        Figure(
            key="predict_p99",
            title=f"/predict p99 latency, {CONNECTIONS} connections",
            value=median(p99s),
            unit="ms",
            measured=f"p50 {median([r.p50_ms for r in predicts]):.1f} ms",
            bar=("<=", 10.0),
            runs=p99s,
        ),
    ]
