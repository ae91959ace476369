"""Instructions an event of the trainer's learning thread against the plain River loop, and
by hand-over: pickle frames (as before stream/handover.py) against marshal frames with the
feature names interned.

One variant a run, under callgrind, which counts instructions whatever else the machine
does; ``none`` only builds the frames and the models, and is subtracted:

    for v in none load plain pickle handover bare; do
      PYTHONHASHSEED=1 OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/handover_counts.py $v linear 2>&1 | grep Collected
    done

  load      loads the marshal frames only (what the trainer's thread pays to receive)
  plain     loads them, then the plain loop (predict_one, Accuracy.update, learn_one) over
            their events: minus ``load``, the baseline's own work
  pickle    loads pickle frames and learns them through ``Learner.learn_many`` + ``settle``
  handover  the same from the marshal frames: the learning thread's work an event
  bare      the same without the rolling windows and the monitors: ``handover`` minus this
            is what ``settle`` costs an event, this minus ``plain`` is ``learn_many``'s own
            bookkeeping

(a variant's count minus none's, over 6,000 events, is the figure in docs/benchmarks.md.)
"""

from __future__ import annotations

import itertools
import marshal
import pickle
import subprocess
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream import handover  # noqa: E402
from stream.decoding import decode_many  # noqa: E402
from stream.fetcher import MAX_POLL_RECORDS  # noqa: E402
from stream.handover import Batch  # noqa: E402

EVENTS, PER_FRAME = 6_000, MAX_POLL_RECORDS
PIPELINES = {
    "linear": ["preprocessing.StandardScaler", "linear_model.LogisticRegression"],
    "tree": ["tree.HoeffdingTreeClassifier"],
}


def _batches(raws: list[bytes]) -> list[Batch]:
    """The values in batches of one poll, decoded as the fetcher decodes them."""
    batches = []
    for start in range(0, len(raws), PER_FRAME):
        values = raws[start : start + PER_FRAME]
        offsets = list(range(start, start + len(values)))
        batch = Batch("events", 0, offsets, [None] * len(values), values, [0] * len(values), None)
        batch.events = decode_many(values, "classification")
        batches.append(batch)
    return batches


def fetcher_frames(raws: list[bytes]) -> list[bytes]:
    """What the fetcher sends: batches of one poll, decoded, names interned, marshal frames.
    Run where River has not interned the names first (``framed_by_a_fetcher``)."""
    names, framed = handover.Names(), []
    for batch in _batches(raws):
        names.intern(batch.events)
        framed.append(handover.dumps([batch]))
    return framed


def frames(raws: list[bytes]) -> dict[str, list[bytes]]:
    """The same batches, framed both ways: pickle (as before stream/handover.py) and the
    fetcher's marshal frames."""
    pickled = [pickle.dumps([b], protocol=pickle.HIGHEST_PROTOCOL) for b in _batches(raws)]
    return {"pickle": pickled, "handover": fetcher_frames(raws)}


def framed_by_a_fetcher(raws: list[bytes]) -> dict[str, list[bytes]]:
    """``frames`` in a process of its own that never imports River, as the fetcher: River's
    Phishing module holds the feature names as constants, which would intern them first."""
    done = subprocess.run(
        [sys.executable, __file__, "frames"], input=marshal.dumps(raws), capture_output=True, check=True
    )
    return marshal.loads(done.stdout)


def main() -> int:
    if sys.argv[1] == "frames":  # the fetcher's side, asked by framed_by_a_fetcher
        sys.stdout.buffer.write(marshal.dumps(frames(marshal.loads(sys.stdin.buffer.read()))))
        return 0
    from river import datasets, metrics

    from bench.plain_loop import pipeline
    from model_store.specs import ModelSpec
    from stream.learner import Learner
    from stream.trainer import collect_young_less_often, freeze_start_up_objects

    variant, model_name = sys.argv[1], sys.argv[2]
    rows = itertools.islice(itertools.cycle(datasets.Phishing()), EVENTS)
    framed = framed_by_a_fetcher([orjson.dumps({"features": x, "label": y}) for x, y in rows])
    spec = ModelSpec.model_validate(
        {
            "name": "b",
            "topic": "b",
            "task": "classification",
            "pipeline": PIPELINES[model_name],
            "metrics": ["Accuracy"],
        }
    )
    learner = Learner.from_spec(spec)
    model, accuracy = pipeline(PIPELINES[model_name]), metrics.Accuracy()
    # The trainer's collector settings: start-up objects frozen, young collections rarer.
    freeze_start_up_objects()
    collect_young_less_often()
    if variant == "none":
        return 0
    if variant in ("load", "plain"):
        batches = [batch for frame in framed["handover"] for batch in handover.loads(frame)]
        for x, y in (event for batch in batches for event in batch.events) if variant == "plain" else ():
            accuracy.update(y, model.predict_one(x))
            model.learn_one(x, y)
        return 0
    load = pickle.loads if variant == "pickle" else handover.loads
    if variant == "bare":
        learner = Learner(
            learner.model, learner.cumulative, {}, monitors=None, sample_size=spec.data_drift.sample
        )
        variant = "handover"
    for frame in framed[variant]:
        for batch in load(frame):
            learner.learn_many(batch.events, 0, len(batch.events))
    learner.settle()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
