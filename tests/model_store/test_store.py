"""Checkpoint store semantics against a real redis-server."""

import pickle
import threading

import pytest

from model_store.settings import Settings
from model_store.snapshot import IncompatibleSnapshot, SnapshotMeta, dump_state, load_state
from model_store.store import CheckpointStore, VersionNotFound
from tests.helpers.factories import blob
from tests.helpers.factories import snapshot_meta as meta


def test_versions_increase_and_latest_follows(store: CheckpointStore):
    published = [store.publish(meta(i), blob(i), keep=10) for i in range(3)]
    assert [m.version for m in published] == [1, 2, 3]
    assert store.latest_version("m") == 3
    got_meta, got_blob = store.fetch("m", 2)
    assert got_meta.n_learned == 1 and got_meta.offsets == {0: 1}
    assert pickle.loads(got_blob)["n_learned"] == 1
    assert store.fetch_latest("m")[0].version == 3


def test_retention_keeps_newest_k_plus_pinned(store: CheckpointStore):
    for i in range(3):
        store.publish(meta(i), blob(i), keep=3)
    store.pin("m", 1)
    for i in range(3, 8):
        store.publish(meta(i), blob(i), keep=3)
    assert store.version_numbers("m") == [1, 6, 7, 8]
    with pytest.raises(VersionNotFound, match=r"retained versions: \[1, 6, 7, 8\]"):
        store.fetch("m", 3)
    assert not store.client.exists(store.keys("m").blob(3))


def test_version_numbers_are_never_reused_after_retention(store: CheckpointStore):
    for i in range(5):
        store.publish(meta(i), blob(i), keep=1)
    assert store.version_numbers("m") == [5]
    assert store.publish(meta(9), blob(9), keep=1).version == 6


def test_readers_never_see_metadata_without_its_blob(store: CheckpointStore):
    """A reader racing a writer with aggressive retention sees whole versions or none."""
    stop = threading.Event()
    seen: list[int] = []
    broken: list[str] = []

    def reader():
        k = store.keys("m")
        while not stop.is_set():
            latest = store.latest_version("m")
            if latest is None:
                continue
            raw_meta, raw_blob = store.client.mget(k.meta(latest), k.blob(latest))
            if (raw_meta is None) != (raw_blob is None):
                broken.append(f"v{latest}: meta={raw_meta is not None} blob={raw_blob is not None}")
            if raw_meta is not None:
                m = SnapshotMeta.model_validate_json(raw_meta)
                if pickle.loads(raw_blob)["n_learned"] != m.n_learned:
                    broken.append(f"v{latest}: blob of another version")
                seen.append(m.version)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(300):
        store.publish(meta(i), blob(i), keep=2)
    stop.set()
    for t in threads:
        t.join()
    assert not broken, broken[:5]
    assert len(set(seen)) > 10


def test_publication_is_announced_on_the_model_channel(store: CheckpointStore):
    pubsub = store.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.keys("m").channel)
    store.publish(meta(), blob(), keep=3)
    message = None
    for _ in range(50):
        message = pubsub.get_message(timeout=0.1)
        if message:
            break
    assert message is not None and b'"version":1' in message["data"]


def test_pin_and_unpin_drive_the_served_pointer(store: CheckpointStore):
    for i in range(3):
        store.publish(meta(i), blob(i), keep=5)
    assert store.served_pointer("m").version == 3
    store.pin("m", 2)
    pointer = store.served_pointer("m")
    assert (pointer.version, pointer.pinned, pointer.latest) == (2, True, 3)
    store.unpin("m")
    assert store.served_pointer("m").version == 3
    with pytest.raises(VersionNotFound):
        store.pin("m", 42)


def test_signed_snapshots_are_verified(store: CheckpointStore):
    key = b"secret"
    published = store.publish(meta(), blob(), keep=3, signing_key=key)
    m, b = store.fetch("m", published.version)
    assert load_state(m, b, key)["n_learned"] == 0
    with pytest.raises(IncompatibleSnapshot, match="signature does not match"):
        load_state(m, b, b"another key")
    tampered = m.model_copy(update={"n_learned": 5})
    with pytest.raises(IncompatibleSnapshot, match="signature does not match"):
        load_state(tampered, b, key)
    unsigned = store.publish(meta(), blob(), keep=3)
    with pytest.raises(IncompatibleSnapshot, match="not signed"):
        load_state(*store.fetch("m", unsigned.version), key)


def test_snapshot_from_another_river_is_refused(store: CheckpointStore):
    published = store.publish(meta(river_version="0.1.0"), blob(), keep=3)
    with pytest.raises(IncompatibleSnapshot, match="River 0.1.0"):
        load_state(*store.fetch("m", published.version), None)


def test_a_store_from_settings_gives_writers_a_pool_of_their_own(redis_server, prefix):
    """What train --all's forked writers rely on: not the pool the trainer threads share."""
    shared = CheckpointStore.from_settings(Settings(redis_url=redis_server.url, key_prefix=prefix))
    own = shared.with_own_pool()
    assert own is not shared and own.prefix == prefix
    assert own.client.connection_pool is not shared.client.connection_pool
    assert own.client.ping() and own.with_own_pool().client.connection_pool is not own.client.connection_pool
    bare = CheckpointStore(shared.client, prefix)
    assert bare.with_own_pool() is bare  # nothing to connect with: documented as itself


def parts(n: int, training_bytes: int = 10_000) -> tuple[bytes, bytes]:
    """A serving artefact and a training state of a known size (pickled padding)."""
    return blob(n), dump_state({"n_learned": n, "pad": b"x" * training_bytes})


def test_each_version_records_both_parts_sizes(store: CheckpointStore):
    artefact, training = parts(1)
    published = store.publish(meta(1), artefact, keep=5, training=training)
    assert (published.blob_bytes, published.training_bytes) == (len(artefact), len(training))
    (listed,) = store.list_versions("m")
    assert listed.total_bytes == len(artefact) + len(training)
    assert store.retained_bytes("m") == len(artefact) + len(training)
    k = store.keys("m")
    assert store.client.strlen(k.training(1)) == len(training)


def test_the_byte_budget_drops_the_oldest_unprotected_versions_first(store: CheckpointStore):
    artefact, training = parts(0)
    one = len(artefact) + len(training)
    for i in range(3):
        store.publish(meta(i), artefact, keep=100, training=training)
    store.pin("m", 1)
    store.tag("m", 2, "baseline")
    for i in range(3, 8):
        store.publish(meta(i), artefact, keep=100, training=training, max_bytes=int(4.5 * one))
    # 4 fit: pinned v1 and tagged v2 stay, so only the two newest of the others do
    assert store.version_numbers("m") == [1, 2, 7, 8]
    assert store.retained_bytes("m") == 4 * one
    assert not store.client.exists(*store.keys("m").version_keys(6))
    store.request_reset("m", 7)
    store.unpin("m")
    store.publish(meta(9), artefact, keep=100, training=training, max_bytes=int(2.5 * one))
    # the reset's target and the tagged one stay even over budget; the unpinned v1 and v8 go
    assert store.version_numbers("m") == [2, 7, 9]


def test_the_byte_budget_counts_versions_written_before_sizes_were_recorded(store: CheckpointStore):
    artefact, training = parts(0)
    for i in range(3):
        store.publish(meta(i), artefact, keep=100, training=training)
    store.client.delete(store.keys("m").sizes)  # as a store from before sizes were recorded
    store.publish(
        meta(3), artefact, keep=100, training=training, max_bytes=2 * (len(artefact) + len(training))
    )
    assert store.version_numbers("m") == [3, 4]
    assert store.retained_bytes("m") == 2 * (len(artefact) + len(training))
