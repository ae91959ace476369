"""What exactly-once tests compare with: Phishing events, the plain River loop, the newest version."""

from __future__ import annotations

from river import compose, datasets, linear_model, preprocessing

from model_store.snapshot import SnapshotMeta
from model_store.store import CheckpointStore


def phishing_events(n: int) -> list[dict]:
    return [{"features": x, "label": y} for x, y in datasets.Phishing().take(n)]


def plain_river(events: list[dict]) -> compose.Pipeline:
    """The reference: a plain River prequential loop over the same events."""
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for e in events:
        model.predict_one(e["features"])
        model.learn_one(e["features"], e["label"])
    return model


def learned(store: CheckpointStore, name: str, n: int) -> tuple[SnapshotMeta, bytes] | None:
    """The newest version once it has learned exactly ``n`` events, else None."""
    newest = store.fetch_latest(name)
    return newest if newest and newest[0].n_learned == n else None
