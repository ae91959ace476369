"""A Redis at its maxmemory (noeviction, the safe policy for a store of record) refuses new
versions; lowering the retention settings frees room by itself, without touching Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store.snapshot import SnapshotMeta, dump_state
from model_store.store import CheckpointStore, StoreFull
from stream.local_services import RedisServer
from tests.helpers.factories import model_spec
from tests.helpers.processes import wait_until
from tests.helpers.replicas import api_client

PART = 400_000  # bytes of training state per version: a few fill an 8 MB Redis


@pytest.fixture
def full_store(tmp_path: Path) -> Iterator[CheckpointStore]:
    server = RedisServer(tmp_path / "redis", maxmemory="8mb").start()
    try:
        yield CheckpointStore.from_url(server.url, "full")
    finally:
        server.stop()


def publish(store: CheckpointStore, n: int, **retention) -> SnapshotMeta:
    meta = SnapshotMeta(model="m", task="classification", topic="m", n_learned=n, offsets={0: n})
    training = dump_state({"n_learned": n, "pad": bytes([n % 256]) * PART})
    return store.publish(meta, dump_state({"model": None}), training=training, **retention)


def fill(store: CheckpointStore, keep: int) -> int:
    """Publish until Redis refuses a version with retention unable to free anything."""
    for n in range(1, 100):
        try:
            publish(store, n, keep=keep)
        except StoreFull as exc:
            assert "Redis is out of memory" in str(exc) and "Lower checkpoint.keep" in str(exc)
            return n
    raise AssertionError("an 8 MB Redis never filled up")


def test_lowering_keep_lets_the_next_checkpoint_through(full_store: CheckpointStore):
    refused_at = fill(full_store, keep=200)
    retained = full_store.version_numbers("m")
    assert len(retained) >= 5  # what the memory holds
    assert full_store.memory("m").full  # what `streamlearn status` reports
    spec = model_spec(pipeline=["linear_model.LogisticRegression"])
    with api_client(full_store, "full", {"m": spec}) as client:
        ready = wait_until(lambda: (r := client.get("/readyz")).status_code == 200 and r.json(), what="ready")
        assert "the next checkpoint does not fit" in ready["checkpoint_store_full"]["m"]
    with pytest.raises(StoreFull):  # retried as it is: still refused, still said so
        publish(full_store, refused_at, keep=200)

    meta = publish(full_store, refused_at, keep=3)  # the operator lowered checkpoint.keep
    assert full_store.version_numbers("m") == [*retained[-2:], meta.version]
    assert full_store.latest_version("m") == meta.version
    assert not full_store.memory("m").full
    k = full_store.keys("m")
    assert not full_store.client.exists(*(key for v in retained[:-2] for key in k.version_keys(v)))


def test_a_byte_budget_lets_the_next_checkpoint_through(full_store: CheckpointStore):
    refused_at = fill(full_store, keep=200)
    retained = full_store.version_numbers("m")
    full_store.pin("m", 1)  # protected: stays although it is the oldest
    meta = publish(full_store, refused_at, keep=200, max_bytes=3 * (PART + 1000))
    assert full_store.version_numbers("m") == [1, retained[-1], meta.version]  # refusals used numbers too


def test_protected_versions_are_never_freed_and_the_refusal_names_them(full_store: CheckpointStore):
    fill(full_store, keep=200)
    retained = full_store.version_numbers("m")
    for v in retained:
        full_store.tag("m", v, f"keep-{v}")
    with pytest.raises(StoreFull, match=r"protected \(pinned, promoted, tagged or a reset's\) \[") as refused:
        publish(full_store, 99, keep=1)
    assert refused.value.protected == retained
    assert full_store.version_numbers("m") == retained
