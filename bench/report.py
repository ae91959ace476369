"""Figures, the printed table, the JSON and the "Service figures" section of docs/benchmarks.md.

The section sits between ``<!-- bench:start -->`` and ``<!-- bench:end -->``; the rest
of the file (the drift detection section among it) is kept as it is.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import river

from stream.local_services import kafka_libs

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
HEADING = "## Service figures (make bench)"


@dataclass
class Figure:
    """One row: ``value`` (a ratio, or a latency / size) and the bar it is held to, if any."""

    key: str
    title: str
    value: float
    unit: str = ""  # empty for a ratio
    measured: str = ""
    baseline: str = ""
    bar: tuple[str, float] | None = None  # (">=" or "<=", threshold)
    runs: list[float] = field(default_factory=list)  # the value of each repeat
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if self.bar is None:
            return None
        op, threshold = self.bar
        return self.value >= threshold if op == ">=" else self.value <= threshold

    def value_text(self) -> str:
        return fmt(self.value, self.unit)

    def bar_text(self) -> str:
        if self.bar is None:
            return "-"
        return f"{self.bar[0]} {fmt(self.bar[1], self.unit)}"

    def met_text(self) -> str:
        return {True: "yes", False: "NO", None: "-"}[self.met]

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def fmt(value: float, unit: str = "") -> str:
    """Ratios with two decimals; other values with about three significant digits."""
    if not unit:
        return f"{value:.2f}"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def rate(value: float) -> str:
    return f"{value:,.0f} ev/s"


# -- where and with what it ran ------------------------------------------------


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "unknown"


def load_average() -> float:
    """1-minute load average: a busy machine explains noisy figures."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def machine() -> dict[str, str]:
    mem_kib = _first("/proc/meminfo", "MemTotal").split()[0]
    mem = f"{int(mem_kib) / 1024**2:.1f} GiB" if mem_kib.isdigit() else "unknown"
    return {
        "cores": str(os.cpu_count()),
        "memory": mem,
        "cpu": _first("/proc/cpuinfo", "model name"),
        "os": f"{_first('/etc/os-release', 'PRETTY_NAME=')}, Linux {platform.release()}",
        "arch": platform.machine(),
    }


def _dist(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def kafka_version() -> str:
    try:
        jars = sorted(kafka_libs().glob("kafka_*-*.jar"))
    except Exception:  # a reused broker may not come from these jars
        return "unknown"
    match = re.search(r"kafka_[\d.]+-(.+)\.jar$", jars[0].name) if jars else None
    return match.group(1) if match else "unknown"


def versions() -> dict[str, str]:
    return {
        "Python": platform.python_version(),
        "River": river.__version__,
        "kafka-python": _dist("kafka-python"),
        "confluent-kafka": _dist("confluent-kafka"),
        "FastAPI": _dist("fastapi"),
        "uvicorn": _dist("uvicorn"),
        "Kafka": kafka_version(),
    }


# -- output --------------------------------------------------------------------

COLUMNS = ("figure", "measured", "baseline", "ratio or value", "bar", "met?")


def rows(figures: list[Figure]) -> list[tuple[str, ...]]:
    return [
        (f.title, f.measured or "-", f.baseline or "-", f.value_text(), f.bar_text(), f.met_text())
        for f in figures
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipeline's "A | B" must not split the Markdown row


def print_table(figures: list[Figure]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for row in [COLUMNS, *rows(figures)]:
            print(" | ".join(row))
        return
    table = Table(title="streamlearn service figures (the performance bars)")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows(figures):
        table.add_row(*row, style="red" if row[-1] == "NO" else None)
    Console(width=max(Console().width, 150)).print(table)


def markdown(
    figures: list[Figure], notes: list[str], command: str, seconds: float, loads: tuple[float, float]
) -> str:
    m, v = machine(), versions()
    table = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(map(_cell, r)) + " |" for r in rows(figures)),
    ]
    return "\n".join(
        [
            START,
            HEADING,
            "",
            f"Measured {dt.date.today():%Y-%m-%d} by `{command}` in {seconds / 60:.0f} min. "
            "Every ratio divides by a baseline measured in the same run on the same machine; "
            "each figure is the median of its repeats.",
            "",
            *table,
            "",
            f"Machine: {m['cores']} cores ({m['cpu']}, {m['arch']}), {m['memory']} memory, {m['os']}; "
            f"load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end.",
            "",
            "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
            "",
            "How each figure is measured:",
            "",
            *(f"- {note}" for note in notes),
            "",
            f"Reproduce: `{command}`. `make bench` runs the defaults (`BENCH_ARGS` passes options: "
            "`--repeat`, `--events`, ...); `--smoke` runs every figure at tiny sizes and writes nothing.",
            END,
        ]
    )


def write_section(path: Path, section: str) -> None:
    """Replace the text between the markers, or insert the section under the title; keep
    everything else. It goes first because bench/drift_detection.py rewrites its own
    section up to the next ``## `` heading, which must not be this one's marker."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        title, _, rest = text.partition("\n") if text.startswith("# ") else ("# Benchmarks", "", text)
        text = f"{title}\n\n{section}\n\n{rest.lstrip(chr(10))}"
    path.write_text(text.rstrip("\n") + "\n")


def write_heading_section(path: Path, heading: str, section: str) -> None:
    """Replace the section under ``heading`` (up to the next '## ' heading), or append it:
    how the benchmarks written by hand-run scripts keep their part of the file."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
