"""The scripts that split the trainer's gap to the plain loop (bench/where_time_goes.py,
bench/handover_counts.py) keep running, and frame events as the fetcher does: in a process
without River, so that the names arrive as one object each (a process that had imported
River's Phishing module held the names interned already, every frame brought copies, and the
split showed a hand-over seven times its cost)."""

from __future__ import annotations

import subprocess
import sys

import orjson

from bench.handover_counts import fetcher_frames, framed_by_a_fetcher
from stream import handover
from stream.fetcher import MAX_POLL_RECORDS
from tests.helpers.processes import ROOT


def _names(frame: bytes) -> list[str]:
    (batch,) = handover.loads(frame)
    return list(batch.events[0][0])


def test_frames_built_elsewhere_carry_each_name_as_one_object():
    # The literals below are interned in this process, as River's dataset interns its names.
    raws = [
        orjson.dumps({"features": {"zq_width": 1.0, "zq_height": float(i)}, "label": i % 2 == 0})
        for i in range(2 * MAX_POLL_RECORDS)
    ]
    first, second = framed_by_a_fetcher(raws)["handover"]
    assert all(a is b for a, b in zip(_names(first), _names(second), strict=True))
    here = fetcher_frames(raws)  # framed where the names were interned first: copies
    assert not any(a is b for a, b in zip(_names(here[0]), _names(here[1]), strict=True))


def test_where_time_goes_runs_every_variant():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "where_time_goes.py"), "--events", "400", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for variant in ("plain", "+ handover", "+ learner"):
        assert done.stdout.count(f"  {variant} ") == 2, done.stdout  # one line a model


def test_handover_counts_runs_every_variant():
    for variant in ("none", "load", "plain", "pickle", "handover", "bare"):
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "handover_counts.py"), variant, "linear"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (variant, done.stderr[-3000:])
