"""What exactly-once tests compare with: Phishing events, the plain River loop, the newest version,
and what a pickle imports."""

from __future__ import annotations

import io
import pickle

from river import compose, datasets, linear_model, preprocessing

from model_store.snapshot import SnapshotMeta
from model_store.store import CheckpointStore


def phishing_events(n: int) -> list[dict]:
    return [{"features": x, "label": y} for x, y in datasets.Phishing().take(n)]


EVENTS = phishing_events(900)
"""The stream the fault tests learn across restarts."""
PROBE = [e["features"] for e in EVENTS[:20]]
"""Features whose predictions are compared with the plain River loop's."""


def plain_river(events: list[dict]) -> compose.Pipeline:
    """The reference: a plain River prequential loop over the same events."""
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for e in events:
        model.predict_one(e["features"])
        model.learn_one(e["features"], e["label"])
    return model


def probe_answers(
    blob: bytes, events: list[dict], probe: list[dict] = PROBE
) -> tuple[list[dict], list[dict]]:
    """What a one-blob or artefact ``blob``'s model and the plain River loop over ``events``
    answer on ``probe``: equal lists when every event was learned once, in order."""
    model, reference = pickle.loads(blob)["model"], plain_river(events)
    return [model.predict_proba_one(x) for x in probe], [reference.predict_proba_one(x) for x in probe]


def learned(store: CheckpointStore, name: str, n: int) -> tuple[SnapshotMeta, bytes] | None:
    """The newest version once it has learned exactly ``n`` events, else None."""
    newest = store.fetch_latest(name)
    return newest if newest and newest[0].n_learned == n else None


def modules_referenced(blob: bytes) -> set[str]:
    """Every module a pickle imports when loaded (the API must have them all)."""
    seen: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(blob)).load()
    return seen
