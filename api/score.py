"""``streamlearn score``: static inference of a whole file with one retained version."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import orjson

from api.predicting import UnusableFeatures, predict_features
from model_store.records import rows
from model_store.snapshot import load_model
from model_store.store import CheckpointStore

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def score_rows(
    model: Any, task: str, records: Iterable[dict], label_column: str | None, out: IO[bytes], version: int
) -> tuple[int, int]:
    """Write one JSON line per row; return (scored, refused). A row the model cannot
    use gets an ``error`` line instead of stopping the run."""
    scored = refused = 0
    for n, row in enumerate(records, 1):
        if "features" in row:
            features = row["features"]
        else:
            features = {k: v for k, v in row.items() if k != label_column}
        line: dict[str, Any] = {"row": n, "version": version}
        try:
            line.update(predict_features(model, task, features))
            scored += 1
        except UnusableFeatures as exc:
            line["error"] = str(exc)
            refused += 1
        out.write(orjson.dumps(line, option=_OPTS))
    return scored, refused


def score_file(
    store: CheckpointStore,
    name: str,
    path: Any,
    out: IO[bytes],
    signing_key: bytes | None,
    version: int | None = None,
    label_column: str | None = "label",
) -> tuple[int, int, int]:
    """Score ``path`` with ``version`` (default: what replicas serve); return (version, scored, refused)."""
    if version is None:
        version = store.served_pointer(name).version
        if version is None:
            raise LookupError(f"model '{name}' has no published version")
    meta, blob = store.fetch(name, version)
    model = load_model(meta, blob, signing_key)
    scored, refused = score_rows(model, meta.task, rows(path), label_column, out, version)
    return version, scored, refused
