"""Pointers that decide what is served (pin > promoted > latest), retention's protections,
reset requests and the audit trail, against a real redis-server."""

from __future__ import annotations

import threading

import pytest

from model_store.store import CheckpointStore, VersionNotFound
from tests.helpers.factories import blob
from tests.helpers.factories import snapshot_meta as meta


def test_a_held_version_is_recorded_but_not_served(store: CheckpointStore):
    store.publish(meta(1), blob(1), keep=10)
    store.publish(meta(2), blob(2), keep=10, promote=False, hold_reason="worse by 0.3")
    pointer = store.served_pointer("m")
    assert (pointer.version, pointer.promoted, pointer.latest, pointer.pinned) == (1, 1, 2, False)
    assert store.held("m") == {2: "worse by 0.3"}
    store.pin("m", 2, reason="operator says it is fine")
    assert store.served_pointer("m").version == 2  # a pin serves even a held version
    store.unpin("m")
    store.publish(meta(3), blob(3), keep=10)
    assert store.served_pointer("m").version == 3


def test_retention_keeps_pinned_tagged_promoted_and_a_pending_reset_target(store: CheckpointStore):
    store.publish(meta(1), blob(1), keep=10)  # v1: promoted, then every later version held
    for i in range(2, 5):
        store.publish(meta(i), blob(i), keep=10, promote=False)
    store.tag("m", 2, "golden")
    store.pin("m", 3)
    store.request_reset("m", 4)
    for i in range(5, 9):
        store.publish(meta(i), blob(i), keep=2, promote=False)
    assert store.version_numbers("m") == [1, 2, 3, 4, 7, 8]
    assert set(store.held("m")) == {2, 3, 4, 7, 8}  # entries of removed versions go with them
    store.untag("m", 2)
    store.unpin("m")
    store.publish(meta(9), blob(9), keep=2)  # promoted now: v1 is no longer protected
    assert store.version_numbers("m") == [4, 8, 9]
    with pytest.raises(VersionNotFound, match=r"no version 2; retained versions: \[4, 8, 9\]") as err:
        store.pin("m", 2)
    assert err.value.existing == [4, 8, 9]
    for call in (lambda: store.tag("m", 3, "x"), lambda: store.request_reset("m", 7)):
        with pytest.raises(VersionNotFound):
            call()


def test_a_pin_racing_aggressive_retention_never_points_at_a_removed_version(store: CheckpointStore):
    """Pin and publish WATCH each other: a version pinned while retention runs is never deleted."""
    store.publish(meta(0), blob(0), keep=1)
    stop = threading.Event()

    def writer():
        i = 1
        while not stop.is_set():
            store.publish(meta(i), blob(i), keep=1)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    pinned = []
    try:
        for _ in range(150):
            try:
                store.pin("m", store.latest_version("m"))
            except VersionNotFound:
                continue  # removed before the pin: refused, never dangling
            version = store.pinned("m")
            pinned.append(version)
            assert store.fetch("m", version)[0].version == version
            store.unpin("m")
    finally:
        stop.set()
        thread.join()
    assert len(pinned) > 50


def test_a_reset_request_is_removed_by_the_version_that_applies_it(store: CheckpointStore):
    for i in range(3):
        store.publish(meta(i), blob(i), keep=10)
    first = store.request_reset("m", 1, reason="bad data since v1")
    newer = store.request_reset("m", 2)
    store.publish(meta(5, parent=1), blob(5), keep=10, applies_reset=first)
    assert store.reset_request("m") == newer  # an older request never removes a newer one
    assert not store.drop_reset("m", first, "stale")
    applied = store.publish(meta(6, parent=2), blob(6), keep=10, applies_reset=newer)
    assert store.reset_request("m") is None
    entry = store.audit_log("m", 1)[0]
    assert (entry["action"], entry["version"], entry["applied_as"]) == ("reset applied", 2, applied.version)


def test_every_pointer_change_is_audited_with_who_and_why(store: CheckpointStore):
    store.publish(meta(1), blob(1), keep=10)
    store.pin("m", 1, reason="incident 42", by="api")
    store.tag("m", 1, "before-incident")
    store.unpin("m")
    actions = [(e["action"], e.get("version"), e.get("reason"), e.get("by")) for e in store.audit_log("m")]
    assert actions == [
        ("unpin", None, None, "cli"),
        ("tag", 1, None, "cli"),
        ("pin", 1, "incident 42", "api"),
    ]
    assert store.pin_reason("m") is None


def test_a_store_from_before_the_gate_keeps_serving_its_newest_version_when_one_is_held(
    store: CheckpointStore,
):
    store.publish(meta(1), blob(1), keep=1)
    store.client.delete(store.keys("m").promoted)  # as written before the promoted pointer existed
    assert store.served_pointer("m").version == 1
    store.publish(meta(2), blob(2), keep=1, promote=False)
    assert store.served_pointer("m").version == 1
    assert store.version_numbers("m") == [1, 2]
