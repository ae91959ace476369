"""Rows of CSV and JSONL files, read the same way for publishing events and for batch scoring."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from model_store.errors import ModelStoreError


class SourceError(ModelStoreError, ValueError):
    """The input file cannot be read as records; the message names the file and line."""


def convert_cell(text: str) -> Any:
    """CSV cells: empty -> null, true/false -> bool, numbers -> int/float, else string."""
    if text == "":
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise SourceError(f"{path}: no header row")
        for row in reader:
            yield {k: convert_cell(v) for k, v in row.items()}


def jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise SourceError(f"{path}:{n}: not JSON: {exc}") from exc
            if not isinstance(obj, dict):
                raise SourceError(f"{path}:{n}: expected a JSON object per line")
            yield obj


def rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a ``.csv`` or ``.jsonl``/``.ndjson`` file."""
    if path.suffix == ".csv":
        return csv_rows(path)
    if path.suffix in (".jsonl", ".ndjson"):
        return jsonl_rows(path)
    raise SourceError(f"{path}: expected a .csv or .jsonl file")
