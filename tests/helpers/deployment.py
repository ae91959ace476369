"""Static readers for the Docker deployment: compose interpolation, Docker build
contexts, PromQL metric names and the metrics the code registers.

No Docker engine runs where the tests do, so these stand in for what Docker,
BuildKit and Prometheus would do with the files.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

# -- compose -------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")
REQUIRED = "<required>"


def interpolate(value: object) -> str:
    """A compose value as compose renders it with an empty environment.

    ``${VAR:-default}`` gives the default, ``${VAR:?message}`` gives
    ``REQUIRED`` (the user must set it), ``$$`` is a literal ``$``.
    """

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        operator = m.group(2) or ""
        if operator.endswith("?"):
            return REQUIRED
        return m.group(3) if operator.endswith("-") else ""

    return _INTERPOLATION.sub(replace, str(value))


def environment(service: dict) -> dict[str, str]:
    """A service's environment (mapping or list form), raw, before interpolation."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def volume_mounts(service: dict) -> Iterator[tuple[str, str, bool]]:
    """(source, target, read_only) of each short- or long-syntax volume of a service."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            yield parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            yield volume.get("source", ""), volume["target"], bool(volume.get("read_only"))


def host_ports(service: dict) -> Iterator[str]:
    """Published host ports of a service (short syntax ``[ip:]host:container`` or long)."""
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published"):
                yield interpolate(port["published"])
            continue
        parts = interpolate(port).split(":")
        if len(parts) >= 2:
            yield parts[-2]


# -- Docker build contexts -------------------------------------------------------------

_SKIP_DIRS = {".git", ".venv", ".cache", "__pycache__", ".pytest_cache", ".ruff_cache", "node_modules"}


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker's matcher reads it (``*`` stays inside a directory)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_rules(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, pattern) per line, in order; the last matching line decides."""
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        rules.append((negate, _pattern(pattern)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``path`` (relative, with /) reaches the build: a pattern matching the
    path or any of its parent directories applies, the last one wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    included = True
    for negate, rx in rules:
        if any(rx.fullmatch(p) for p in prefixes):
            included = negate
    return included


def build_context(root: Path, rules: list[tuple[bool, re.Pattern[str]]]) -> set[str]:
    """Every file of the working tree that a build with these ignore rules receives."""
    found: set[str] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        for entry in directory.iterdir():
            if entry.is_dir():
                if entry.name not in _SKIP_DIRS:
                    stack.append(entry)
                continue
            rel = entry.relative_to(root).as_posix()
            if in_context(rel, rules):
                found.add(rel)
    return found


# -- PromQL ----------------------------------------------------------------------------

_PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
}
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = _STRINGS.sub(" ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)  # label lists of by/without/on/...
    return {m.group(0) for m in _IDENT.finditer(text)} - _PROMQL_KEYWORDS


def grafana_variable_metric_names(query: str) -> set[str]:
    """Metric names a Grafana Prometheus template-variable query reads."""
    query = query.strip()
    m = re.fullmatch(r"label_values\((.*),\s*\w+\s*\)", query, re.S)
    if m:
        return promql_metric_names(m.group(1))
    m = re.fullmatch(r"query_result\((.*)\)", query, re.S)
    if m:
        return promql_metric_names(m.group(1))
    return set()  # label_values(label), label_names(), metrics(regex): no metric read


def dashboard_metric_names(dashboard: dict) -> set[str]:
    """Every metric a Grafana dashboard's panels and template variables query."""
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                names.update(promql_metric_names(node["expr"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard.get("panels", []))
    walk(dashboard.get("rows", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        names.update(grafana_variable_metric_names(str(query or "")))
    return names


# -- metrics the code registers ----------------------------------------------------------

# prometheus-client's metric classes and the sample names each exposes for a name.
SAMPLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "Summary": ("_sum", "_count", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
    "CounterMetricFamily": ("_total", "_created"),
    "GaugeMetricFamily": ("",),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count", "_created"),
    "SummaryMetricFamily": ("_sum", "_count", "_created"),
    "InfoMetricFamily": ("_info",),
    "StateSetMetricFamily": ("",),
    "GaugeHistogramMetricFamily": ("_bucket", "_gsum", "_gcount"),
    "UnknownMetricFamily": ("",),
}
# The project's own collectors, keyed by class name: stream/telemetry.py's LatencyBuckets is a
# lock-free histogram whose name is its first argument.
PROJECT_COLLECTORS: dict[str, str] = {"LatencyBuckets": "HistogramMetricFamily"}


def _constant(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _metric_kinds(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """Names bound to prometheus-client metric classes, and aliases of the module itself."""
    classes: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "prometheus_client":
            for alias in node.names:
                if alias.name in SAMPLE_SUFFIXES:
                    classes[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "prometheus_client":
                    modules.add(alias.asname or alias.name.split(".")[0])
    return classes, modules


def registered_metrics(source: str, where: str = "<source>") -> tuple[set[str], list[str]]:
    """Sample names the prometheus-client constructors in ``source`` register, and the
    places whose name is not a literal (so cannot be read statically)."""
    tree = ast.parse(source)
    classes, modules = _metric_kinds(tree)
    names: set[str] = set()
    unreadable: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        kind = None
        if isinstance(func, ast.Name) and func.id in classes:
            kind = classes[func.id]
        elif isinstance(func, ast.Name) and func.id in PROJECT_COLLECTORS:
            kind = PROJECT_COLLECTORS[func.id]
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in SAMPLE_SUFFIXES
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
        ):
            kind = func.attr
        args = node.args
        if kind is None and len(args) >= 2 and _constant(args[1]) is not None:
            # a builder handed the metric's class and name: own(Gauge, "x_total", ...)
            cls = args[0]
            if isinstance(cls, ast.Name) and cls.id in classes:
                kind, args = classes[cls.id], args[1:]
            elif (
                isinstance(cls, ast.Attribute)
                and cls.attr in SAMPLE_SUFFIXES
                and isinstance(cls.value, ast.Name)
                and cls.value.id in modules
            ):
                kind, args = cls.attr, args[1:]
        if kind is None:
            continue
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        name = _constant(args[0]) if args else _constant(keywords.get("name"))
        if name is None:
            unreadable.append(f"{where}:{node.lineno}")
            continue
        parts = [_constant(keywords.get("namespace")), _constant(keywords.get("subsystem")), name]
        full = "_".join(p for p in parts if p)
        unit = _constant(keywords.get("unit"))
        if unit and not full.endswith(f"_{unit}"):
            full = f"{full}_{unit}"
        if kind.startswith("Counter") and full.endswith("_total"):
            full = full[: -len("_total")]
        names.update(full + suffix for suffix in SAMPLE_SUFFIXES[kind])
    return names, unreadable


def scan_packages(root: Path, packages: Iterable[str]) -> tuple[set[str], list[str]]:
    """``registered_metrics`` over every Python file of the given packages."""
    names: set[str] = set()
    unreadable: list[str] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found, unknown = registered_metrics(path.read_text(), str(path.relative_to(root)))
            names |= found
            unreadable += unknown
    return names, unreadable
