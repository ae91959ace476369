"""/predict figures: requests per second of ``POST /models/{name}/predict`` with the shipped
defaults (prediction log on, to the run's Kafka) against a bare ASGI app answering a constant
body under the same uvicorn (bench/bare_asgi.py), the HTTP stack's ceiling; the same with the
log off, and ``GET /healthz`` (FastAPI's router) as a second baseline. 16 connections from
wrk, the latency percentiles wrk reports, and the CPU time each server process spent per
request (the replica, and its prediction log's producer process apart).

wrk runs on the same machine as the servers, as a client would on a small host; the sides
rotate from repeat to repeat, so all see the same load from the rest of the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.harness import BenchError, Child, descendants, require_tool
from bench.report import Figure
from bench.stats import median

CONNECTIONS, THREADS = 16, 2
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_TICKS = os.sysconf("SC_CLK_TCK")


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, all its threads; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


@dataclass(frozen=True)
class Side:
    """One server wrk is pointed at: its URL, whether to POST the instance, its processes."""

    key: str
    title: str
    url: str
    post: bool
    server: Child


@dataclass
class Measured:
    runs: list[WrkResult]
    cpu_us: list[float]  # CPU of the server process per request, microseconds
    child_cpu_us: list[float]  # CPU of the processes it started (the log's producer) per request


def measure(side: Side, script: Path, seconds: float, into: Measured) -> None:
    children = descendants(side.server.pid)
    before = cpu_seconds(side.server.pid), sum(map(cpu_seconds, children))
    result = wrk(side.url, seconds, script if side.post else None)
    after = cpu_seconds(side.server.pid), sum(map(cpu_seconds, children))
    into.runs.append(result)
    into.cpu_us.append((after[0] - before[0]) / result.requests * 1e6)
    into.child_cpu_us.append((after[1] - before[1]) / result.requests * 1e6)
    side.server.check()


def _summary(m: Measured) -> str:
    rps, p50, p99 = (median([getattr(r, f) for r in m.runs]) for f in ("rps", "p50_ms", "p99_ms"))
    spread = f"{min(r.rps for r in m.runs):,.0f}-{max(r.rps for r in m.runs):,.0f}"
    cpu = f"; CPU {median(m.cpu_us):.0f} us/request"
    if any(m.child_cpu_us):
        cpu += f" + {median(m.child_cpu_us):.0f} us in the log's producer"
    return f"{rps:,.0f} req/s ({spread}), p50 {p50:.1f} ms, p99 {p99:.1f} ms{cpu}"


def predict_figures(
    sides: list[Side], body: dict, workdir: Path, seconds: float, repeat: int, warmup: float
) -> list[Figure]:
    """The /predict figures. ``sides``: the bare ASGI app, the replica with the shipped
    defaults (log on), the replica with the log off, and ``/healthz`` of the latter."""
    script = predict_script(workdir / "predict.lua", body)
    if warmup:
        for side in sides:
            wrk(side.url, warmup, script if side.post else None)
    measured = {side.key: Measured([], [], []) for side in sides}
    for i in range(repeat):
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:  # rotated each repeat
            measure(side, script, seconds, measured[side.key])
    bare, logged, unlogged, healthz = (measured[k] for k in ("bare", "logged", "unlogged", "healthz"))

    def ratios(top: Measured, bottom: Measured) -> list[float]:
        return [t.rps / b.rps for t, b in zip(top.runs, bottom.runs, strict=True)]

    titles = {side.key: side.title for side in sides}
    extra = {
        key: {"runs": [r.__dict__ for r in m.runs], "cpu_us": m.cpu_us, "child_cpu_us": m.child_cpu_us}
        for key, m in measured.items()
    } | {"connections": CONNECTIONS, "seconds": seconds, "titles": titles}
    logged_ratios, unlogged_ratios = ratios(logged, bare), ratios(unlogged, bare)
    p99s, unlogged_p99s = [r.p99_ms for r in logged.runs], [r.p99_ms for r in unlogged.runs]
    return [
        Figure(
            key="predict_rps",
            title=f"/predict, shipped defaults (prediction log on) req/s / bare ASGI app req/s, "
            f"{CONNECTIONS} connections",
            value=median(logged_ratios),
            measured=_summary(logged),
            baseline=_summary(bare),
            bar=(">=", 0.50),
            runs=logged_ratios,
            extra=extra,
        ),
        Figure(
            key="predict_p99",
            title=f"/predict p99 latency, shipped defaults, {CONNECTIONS} connections",
            value=median(p99s),
            unit="ms",
            measured=f"p50 {median([r.p50_ms for r in logged.runs]):.1f} ms",
            bar=("<=", 5.0),
            runs=p99s,
        ),
        Figure(
            key="predict_rps_log_off",
            title="/predict, prediction log off, req/s / bare ASGI app req/s",
            value=median(unlogged_ratios),
            measured=_summary(unlogged),
            baseline=_summary(bare),
            runs=unlogged_ratios,
        ),
        Figure(
            key="predict_p99_log_off",
            title="/predict p99 latency, prediction log off",
            value=median(unlogged_p99s),
            unit="ms",
            runs=unlogged_p99s,
        ),
        Figure(
            key="predict_rps_healthz",
            title="/predict, shipped defaults, req/s / GET /healthz req/s (FastAPI's router)",
            value=median(ratios(logged, healthz)),
            measured=_summary(logged),
            baseline=_summary(healthz),
            runs=ratios(logged, healthz),
        ),
    ]
