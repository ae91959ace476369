"""The benchmark's arithmetic and parsing, which would otherwise fail silently as wrong numbers."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys

import orjson
import pytest

from bench.harness import BenchError, descendants, peak_rss_mib, wait_until
from bench.plain_loop import build, serve_steps
from bench.plain_loop import run as plain_run
from bench.report import END, START, Figure, write_section
from bench.serving import parse_wrk
from bench.stats import percentile
from bench.trainer_rate import Turns, interleaved_rates, learned, turn_rate

WRK = """Running 10s test @ http://127.0.0.1:8000/healthz
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.91ms    2.10ms  40.12ms   90.00%
    Req/Sec     1.65k   120.00     1.90k    70.00%
  Latency Distribution
     50%    4.50ms
     75%    5.20ms
     90%    6.80ms
     99%   12.30ms
  32950 requests in 10.01s, 4.71MB read
Requests/sec:   3291.71
Transfer/sec:    481.80KB
"""


def test_wrk_output_is_read_in_milliseconds():
    result = parse_wrk(WRK)
    assert result.rps == pytest.approx(3291.71)
    assert (result.p50_ms, result.p99_ms, result.requests) == (4.5, 12.3, 32950)
    assert parse_wrk(WRK.replace("12.30ms", "850.00us")).p99_ms == pytest.approx(0.85)
    assert parse_wrk(WRK.replace("12.30ms", "1.20s")).p99_ms == pytest.approx(1200)


def test_wrk_error_responses_refuse_the_run():
    with pytest.raises(BenchError, match="error responses"):
        parse_wrk(WRK + "  Non-2xx or 3xx responses: 12\n")
    with pytest.raises(BenchError, match="socket errors"):
        parse_wrk(WRK + "  Socket errors: connect 0, read 3, write 0, timeout 0\n")


def test_percentile_interpolates():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 99) == 99
    assert percentile([7.0], 99) == 7.0


def test_learned_counter_of_one_model():
    page = (
        '# TYPE streamlearn_events_learned_total counter\nstreamlearn_events_learned_total{model="a"} 12.0\n'
        'streamlearn_events_learned_total{model="ab"} 99.0\n'
    )
    assert learned(page, "a") == 12.0
    assert learned(page, "b") is None


def test_plain_loop_counts_what_the_trainer_scores():
    values = [b'{"features": {"x": 1.0}, "label": true}', b'{"features": {"x": -1.0}, "label": false}'] * 20
    out = plain_run(values, ["tree.HoeffdingTreeClassifier"])
    assert out["events"] == 40 and out["rate"] > 0
    assert out["scored_accuracy"] >= out["accuracy"]  # the first, unscored prediction is None


def test_plain_loop_in_steps_learns_what_it_learns_in_one_run():
    values = [b'{"features": {"x": 1.0}, "label": true}', b'{"features": {"x": -1.0}, "label": false}'] * 20
    out = io.StringIO()
    serve_steps(values, ["tree.HoeffdingTreeClassifier"], io.StringIO("5\n5\n30\n99\n"), out)
    answers = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0] == {"ready": 40}
    assert [a["events"] for a in answers[1:5]] == [5, 0, 25, 10]  # up to the event asked, never back
    assert all(a["seconds"] >= 0 for a in answers[1:5])
    whole = plain_run(values, ["tree.HoeffdingTreeClassifier"])
    assert answers[5] == {k: whole[k] for k in ("accuracy", "scored_accuracy", "events")}


def test_interleaved_rates_sum_the_turns_inside_the_slice():
    turns = [
        Turns(0, 50, 1.0, 50, 0.5),  # before 10% of 1,000: start-up, left out
        Turns(100, 400, 1.0, 350, 0.5),
        Turns(400, 600, 1.0, 200, 0.25),
        Turns(600, 950, 1.0, 350, 0.5),  # past 90%: the tail, left out
    ]
    trainer, plain, counted = interleaved_rates(turns, 1000)
    assert (trainer, plain, counted) == (250.0, 550 / 0.75, 2)  # sums, not a mean of ratios


def test_interleaved_rates_of_a_backlog_too_short_for_a_turn():
    trainer, plain, counted = interleaved_rates([Turns(0, 1000, 0.5, 1000, 0.1)], 1000)
    assert (trainer, plain, counted) == (2000.0, 10_000.0, 0)
    with pytest.raises(BenchError, match="no turn"):
        interleaved_rates([Turns(1000, 1000, 0.5, 0, 0.0)], 1000)


def test_a_trainers_rate_over_its_own_turns_inside_the_slice():
    turns = [Turns(0, 90, 1.0, 0, 0.0), Turns(100, 300, 1.0, 0, 0.0), Turns(300, 400, 0.25, 0, 0.0)]
    turns.append(Turns(400, 1000, 1.0, 0, 0.0))  # ends past 90%: left out
    assert turn_rate(turns, 1000) == 300 / 1.25
    assert turn_rate([Turns(0, 1000, 2.0, 0, 0.0)], 1000) == 500  # too short a backlog: every turn
    with pytest.raises(BenchError, match="no turn"):
        turn_rate([Turns(50, 50, 1.0, 0, 0.0)], 1000)


def test_plain_loop_builds_the_yaml_steps_with_nested_objects():
    model = build({"linear_model.LogisticRegression": {"optimizer": {"optim.SGD": {"lr": 0.1}}, "l2": 0.0}})
    assert type(model.optimizer).__name__ == "SGD" and model.optimizer.learning_rate == 0.1


def test_section_is_replaced_between_markers_and_the_rest_kept(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Drift detection\n\nkept\n")
    write_section(doc, f"{START}\none\n{END}")
    write_section(doc, f"{START}\ntwo\n{END}")
    text = doc.read_text()
    assert text.count(START) == 1 and "two" in text and "one" not in text
    assert text.index(END) < text.index("## Drift detection") and text.endswith("kept\n")


def test_bars_are_met_or_not():
    assert Figure("r", "ratio", 0.85, bar=(">=", 0.8)).met is True
    assert Figure("l", "latency", 12.0, unit="ms", bar=("<=", 10.0)).met is False
    assert Figure("m", "memory", 150.0, unit="MiB").met is None


def test_memory_of_a_process_and_of_those_it_started():
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '30'])"])
    try:
        found = wait_until(lambda: descendants(parent.pid), 10, "the grandchild")
        assert len(found) == 1 and peak_rss_mib(found[0]) > 0
        assert peak_rss_mib(parent.pid) > 1
    finally:
        parent.kill()
        parent.wait()
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_backlog_learned_in_one_batch_between_two_readings_counts_all_turns_as_one():
    # the counter moved 0 -> 400 after one turn's last reading and before the next one's first
    turns = [Turns(0, 0, 1.0, 0, 0.0), Turns(400, 400, 1.0, 0, 0.0)]
    assert turn_rate(turns, 400) == 400 / 2.0
