"""Instructions an event for the trainer's learning thread, by hand-over: pickle frames (as
before stream/handover.py) against marshal frames with the names interned.

One variant a run, under callgrind, which counts instructions whatever else the machine
does; a run with ``none`` builds the frames only, and is subtracted:

    for v in none pickle handover; do
      PYTHONHASHSEED=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/handover_counts.py $v linear 2>&1 | grep Collected
    done

(events (Collected - none's) / 6,000 is the figure in docs/benchmarks.md.)
"""

from __future__ import annotations

import itertools
import pickle
import sys
from pathlib import Path

import orjson
from river import datasets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_store.specs import ModelSpec  # noqa: E402
from stream import handover  # noqa: E402
from stream.decoding import decode_many  # noqa: E402
from stream.handover import Batch  # noqa: E402
from stream.learner import Learner  # noqa: E402

EVENTS, PER_FRAME = 6_000, 2_000
PIPELINES = {
    "linear": ["preprocessing.StandardScaler", "linear_model.LogisticRegression"],
    "tree": ["tree.HoeffdingTreeClassifier"],
}


def frames(raws: list[bytes]) -> dict[str, list[bytes]]:
    """The same batches, framed both ways (as the fetcher would, names interned for marshal)."""
    framed: dict[str, list[bytes]] = {"pickle": [], "handover": []}
    names = handover.Names()
    for start in range(0, len(raws), PER_FRAME):
        values = raws[start : start + PER_FRAME]
        offsets = list(range(start, start + len(values)))
        batch = Batch("events", 0, offsets, [None] * len(values), values, [0] * len(values), None)
        batch.events = decode_many(values, "classification")
        framed["pickle"].append(pickle.dumps([batch], protocol=pickle.HIGHEST_PROTOCOL))
        names.intern(batch.events)
        framed["handover"].append(handover.dumps([batch]))
    return framed


def main() -> int:
    variant, model = sys.argv[1], sys.argv[2]
    rows = itertools.islice(itertools.cycle(datasets.Phishing()), EVENTS)
    framed = frames([orjson.dumps({"features": x, "label": y}) for x, y in rows])
    spec = ModelSpec.model_validate(
        {
            "name": "b",
            "topic": "b",
            "task": "classification",
            "pipeline": PIPELINES[model],
            "metrics": ["Accuracy"],
        }
    )
    learner = Learner.from_spec(spec)
    if variant == "none":
        return 0
    load = pickle.loads if variant == "pickle" else handover.loads
    for frame in framed[variant]:
        for batch in load(frame):
            learner.learn_many(batch.events, 0, len(batch.events))
    learner.settle()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
