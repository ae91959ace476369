import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.joiner import Joined, Joiner, Logged, Unjoinable


def joiner(**kw) -> Joiner:
    return Joiner(max_age_ms=kw.pop("max_age_ms", 1000), max_pending=kw.pop("max_pending", 10))


def test_label_after_prediction_joins_with_the_served_features_and_delay():
    j = joiner()
    assert j.add_prediction("a", 100, {"x": 1}, True, {True: 0.8, False: 0.2}, 7) is None
    joined = j.add_label("a", 350, False, b"raw")
    assert joined == Joined("a", {"x": 1}, False, True, {True: 0.8, False: 0.2}, 7, 250)
    assert j.counts["hit"] == 1 and not j.predictions


def test_label_before_prediction_waits_then_joins():
    j = joiner()
    assert j.add_label("a", 100, 3.5, b"raw") is None
    joined = j.add_prediction("a", 90, {"x": 2}, 3.0, None, 1)
    assert isinstance(joined, Joined) and joined.label == 3.5 and joined.delay_ms == 10


def test_prediction_without_label_expires_by_event_time():
    j = joiner()
    j.add_prediction("a", 0, {"x": 1}, 1, None, 1)
    j.add_prediction("b", 1500, {"x": 1}, 1, None, 1)
    assert j.expire() == []
    assert j.counts["expired"] == 1 and list(j.predictions) == ["b"]
    late = j.add_label("a", 1600, 1, b"late")
    assert isinstance(late, Unjoinable) and late.reason.startswith("expired")


def test_label_past_max_age_is_refused_even_before_the_sweep():
    j = joiner()
    j.add_prediction("a", 0, {"x": 1}, 1, None, 1)
    late = j.add_label("a", 5000, 1, b"late")
    assert isinstance(late, Unjoinable) and late.reason.startswith("expired")


def test_label_with_unknown_id_is_refused_after_max_age():
    j = joiner()
    assert j.add_label("ghost", 0, 1, b"raw-ghost") is None
    j.add_prediction("other", 2000, {"x": 1}, 1, None, 1)
    refused = j.expire()
    assert [(r.id, r.raw) for r in refused] == [("ghost", b"raw-ghost")]
    assert refused[0].reason.startswith("unknown id")


def test_bounds_evict_the_oldest():
    j = joiner(max_pending=2)
    for i in range(3):
        j.add_prediction(f"p{i}", i, {}, 1, None, 1)
    assert list(j.predictions) == ["p1", "p2"] and j.counts["expired"] == 1
    j.add_label("l0", 0, 1, b"0")
    j.add_label("l1", 0, 1, b"1")
    evicted = j.add_label("l2", 0, 1, b"2")
    assert isinstance(evicted, Unjoinable) and evicted.id == "l0" and evicted.reason.startswith("unknown id")


def test_duplicate_label_and_replayed_prediction_are_not_joined_twice():
    j = joiner()
    j.add_prediction("a", 0, {"x": 1}, 1, None, 1)
    assert isinstance(j.add_label("a", 1, 1, b""), Joined)
    assert j.add_prediction("a", 0, {"x": 1}, 1, None, 1) is None
    dup = j.add_label("a", 2, 1, b"")
    assert isinstance(dup, Unjoinable) and dup.reason.startswith("duplicate")


def test_state_round_trips_through_pickle_with_builtins_only():
    j = joiner()
    j.add_prediction("a", 0, {"x": 1}, 1, None, 1)
    j.add_label("b", 5, 0, b"raw")
    restored = Joiner(1000, 10, pickle.loads(pickle.dumps(j.state())))
    assert isinstance(restored.add_label("a", 10, 1, b""), Joined)
    assert isinstance(restored.add_prediction("b", 3, {"x": 2}, 0, None, 1), Joined)


def logged(j: Joiner, n: int, partition: int = 0) -> None:
    for i in range(n):
        j.add_prediction(f"p{i}", i, {"x": i, "big": "f" * 100}, True, None, 1, at=(partition, 100 + i))


def restored(state: dict, records: dict[int, tuple[str, int]], max_pending: int = 10) -> Joiner:
    """A joiner from ``state`` that read back ``records`` (offset -> (id, ts)) of partition 0."""
    j = Joiner(max_age_ms=1000, max_pending=max_pending, state=pickle.loads(pickle.dumps(state)))
    for offset, (id_, ts) in records.items():
        j.restore((0, offset), Logged(id_, ts, {"x": ts, "big": "f" * 100}, True, None, 1))
    j.finish_restore()
    return j


def test_a_checkpoint_holds_pending_predictions_by_log_position_not_by_features():
    j = joiner(max_pending=1000)
    logged(j, 500)
    state = j.state()
    assert state["predictions"] == [] and "f" * 100 not in repr(state)
    assert len(pickle.dumps(state)) < 500  # 500 predictions of 100+ bytes of features each


def test_pending_and_settled_come_back_from_the_log_as_they_were():
    j = joiner()
    logged(j, 4)
    assert isinstance(j.add_label("p1", 10, False, b"l1"), Joined)
    state, before = j.state(), dict(j.counts)
    log = {100 + i: (f"p{i}", i) for i in range(4)}
    back = restored(state, log)
    assert list(back.predictions) == ["p0", "p2", "p3"] and back.counts == before
    assert back.predictions["p2"] == j.predictions["p2"]
    again = back.add_label("p1", 11, False, b"again")  # settled before the restart: still known
    assert isinstance(again, Unjoinable) and again.reason.startswith("duplicate")
    assert isinstance(back.add_label("p3", 12, True, b"l3"), Joined)


def test_a_record_read_twice_restores_nothing_twice_and_what_retention_removed_counts_as_expired():
    j = joiner()
    logged(j, 3)
    state = j.state()
    back = Joiner(max_age_ms=1000, max_pending=10, state=state)
    for _ in range(2):  # a retried read
        back.restore((0, 100), Logged("p0", 0, {}, True, None, 1))
    assert back.finish_restore() == 2  # p1 and p2 are no longer in the log
    assert list(back.predictions) == ["p0"] and back.counts["expired"] == 2


def test_a_checkpoint_written_before_positions_still_loads_and_is_carried_whole():
    old = {
        "predictions": [("a", (5, {"x": 1}, True, None, 3))],
        "labels": [],
        "settled": [("b", "joined")],
        "counts": {"hit": 1},
        "watermark_ms": 5,
    }
    j = Joiner(max_age_ms=1000, max_pending=10, state=old)
    assert not j.unrestored
    joined = j.add_label("a", 6, False, b"a")
    assert isinstance(joined, Joined) and joined.features == {"x": 1} and joined.version == 3
    assert j.add_label("b", 7, False, b"b").reason.startswith("duplicate")
    j.add_prediction("c", 8, {"x": 2}, True, None, 3)  # no place in the log: carried whole
    assert [id_ for id_, _ in j.state()["predictions"]] == ["c"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["predict", "label", "expire"]), st.integers(0, 30), st.integers(0, 50)),
        min_size=40,
        max_size=200,
    )
)
def test_what_a_checkpoint_holds_by_position_comes_back_whole_from_the_log(ops):
    """Any history: the joiner read back from (checkpoint, log) equals the one that wrote it,
    in what it holds pending, what it remembers as settled, and its counts."""
    j = Joiner(max_age_ms=40, max_pending=5)
    log: dict[int, tuple[str, int]] = {}  # offset -> (id, ts): the prediction log
    ts = 0
    for op, n, step in ops:
        ts += step % 7
        if op == "predict":
            offset = len(log)
            log[offset] = (f"id{n}", ts)
            j.add_prediction(f"id{n}", ts, {"x": n}, True, None, 1, at=(0, offset))
        elif op == "label":
            j.add_label(f"id{n}", ts, True, b"raw")
        else:
            j.watermark_ms = max(j.watermark_ms, ts)
            j.expire()
    back = Joiner(max_age_ms=40, max_pending=5, state=pickle.loads(pickle.dumps(j.state())))
    for offset, (id_, at_ts) in log.items():
        back.restore((0, offset), Logged(id_, at_ts, {"x": int(id_[2:])}, True, None, 1))
    assert back.finish_restore() == 0
    assert dict(back.predictions) == dict(j.predictions)
    assert dict(back.settled) == dict(j.settled)
    assert back.counts == j.counts and back.labels == j.labels
