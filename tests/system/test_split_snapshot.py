"""A version in two parts: replicas load the serving artefact only, the trainer both parts,
and snapshots written in the one-blob form before the split still load on both sides."""

from __future__ import annotations

import hashlib
import pathlib

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.manager import ModelManager
from api.score import score_file
from api.settings import ApiSettings
from model_store.cli import size
from model_store.snapshot import IncompatibleSnapshot, SnapshotMeta, dump_parts, dump_state, load_state, sign
from model_store.specs import ModelSpec
from model_store.store import CheckpointStore
from stream.learner import Learner
from stream.local_services import free_port
from stream.publish import publish
from tests.helpers.learning import phishing_events, plain_river
from tests.helpers.processes import SIGNING_KEY, Env, cli, wait_until, write_spec
from tests.helpers.prometheus import sample

KEY = SIGNING_KEY.encode()
EXACT = {"every_events": 100, "every_seconds": 3600, "keep": 50}


class Trap:
    """Unpickling this touches ``path``: proof that whoever unpickled it ran training state."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def learned_state(spec: ModelSpec, events: list[dict]) -> dict:
    learner = Learner.from_spec(spec)
    for e in events:
        learner.learn_one(e["features"], e["label"])
    return learner.state()


def first_meta(spec: ModelSpec, n: int) -> SnapshotMeta:
    return SnapshotMeta(model=spec.name, task=spec.task, topic=spec.topic, n_learned=n, offsets={0: n})


def write_one_blob(store: CheckpointStore, meta: SnapshotMeta, state: dict) -> None:
    """Version 1 exactly as a trainer from before the split wrote it: one blob with the whole
    state, metadata that has never heard of a training part."""
    k = store.keys(meta.model)
    blob = dump_state(state)
    signed = sign(meta.model_copy(update={"version": 1}), blob, KEY)
    old_json = signed.model_dump_json(exclude={"training_sha256", "training_bytes"})
    assert "training" not in old_json
    with store.client.pipeline(transaction=True) as tx:
        tx.set(k.next_version, 1)
        tx.set(k.blob(1), blob)
        tx.set(k.meta(1), old_json)
        tx.zadd(k.versions, {"1": 1})
        tx.set(k.latest, 1)
        tx.set(k.promoted, 1)
        tx.sadd(f"{store.prefix}:models", meta.model)
        tx.execute()


def test_a_replica_never_unpickles_training_state(store: CheckpointStore, prefix: str, tmp_path):
    spec = write_spec(tmp_path / "models", name=prefix, topic=prefix)
    events = phishing_events(200)
    marker = tmp_path / "training-state-was-unpickled"
    artefact, training = dump_parts({**learned_state(spec, events), "trap": Trap(marker)})
    meta = store.publish(first_meta(spec, 200), artefact, keep=5, signing_key=KEY, training=training)
    assert meta.is_split and meta.training_bytes == len(training) and meta.blob_bytes == len(artefact)

    settings = ApiSettings(
        redis_url="redis://unused.invalid:1",
        key_prefix=prefix,
        poll_interval_seconds=0.2,
        signing_key=SIGNING_KEY,
    )
    reference = plain_river(events)
    with TestClient(create_app(settings, specs={spec.name: spec}, store=store)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=20, what="the replica ready")
        for e in phishing_events(220)[200:]:
            r = client.post(f"/models/{spec.name}/predict", json={"features": e["features"]})
            assert r.status_code == 200, r.text
            assert r.json()["version"] == meta.version
            assert r.json()["prediction"] == reference.predict_one(e["features"])
        load = sample(
            client.get("/metrics").text, "streamlearn_snapshot_load_seconds", version=str(meta.version)
        )
        assert load is not None and 0 < load < 60, load
    to_score = tmp_path / "rows.jsonl"
    to_score.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events[:10]))
    with (tmp_path / "scored.jsonl").open("wb") as out:
        assert score_file(store, spec.name, to_score, out, KEY) == (meta.version, 10, 0)
    assert not marker.exists(), "the serving side unpickled the training state"

    # The trap is live: the trainer's load (both parts) runs it.
    _, blob, training_read = store.fetch_parts(spec.name, meta.version)
    load_state(meta, blob, KEY, training_read)
    assert marker.exists()


def test_a_tampered_training_part_is_refused_by_the_trainer(store: CheckpointStore, prefix: str, tmp_path):
    spec = write_spec(tmp_path / "models", name=prefix, topic=prefix)
    artefact, training = dump_parts(learned_state(spec, phishing_events(50)))
    meta = store.publish(first_meta(spec, 50), artefact, keep=5, signing_key=KEY, training=training)
    store.client.set(store.keys(spec.name).training(meta.version), dump_state({"metrics": {}}))
    got_meta, blob, tampered = store.fetch_parts(spec.name, meta.version)
    with pytest.raises(IncompatibleSnapshot, match="training state digest"):
        load_state(got_meta, blob, KEY, tampered)
    # and the digest cannot be swapped along with it: the signature covers it
    forged = got_meta.model_copy(update={"training_sha256": hashlib.sha256(tampered).hexdigest()})
    with pytest.raises(IncompatibleSnapshot, match="signature"):
        load_state(forged, blob, KEY, tampered)
    assert load_state(got_meta, blob, KEY, training)["n_learned"] == 50


@pytest.mark.parametrize("form", ["split", "one-blob"])
def test_the_trainer_resumes_from_both_parts_and_replicas_serve_either_form(
    env: Env, store: CheckpointStore, form: str
):
    name = env.key_prefix
    spec = write_spec(env.models_dir, name=name, topic=name, checkpoint=EXACT)
    events = phishing_events(300)
    state = learned_state(spec, events[:200])
    if form == "split":
        artefact, training = dump_parts(state)
        store.publish(first_meta(spec, 200), artefact, keep=5, signing_key=KEY, training=training)
    else:
        write_one_blob(store, first_meta(spec, 200), state)
    assert store.meta(name, 1).is_split is (form == "split")

    manager = ModelManager({name: spec}, store, KEY)
    served = manager.refresh(name)
    assert served is not None and served.version == 1, manager.problems
    assert served.model.predict_one(events[250]["features"]) == plain_river(events[:200]).predict_one(
        events[250]["features"]
    )

    publish(events, name, env.kafka, progress=False)  # the first 200 are in v1 already
    metrics_port = free_port()
    env.start_trainer(name, STREAMLEARN_METRICS_PORT=str(metrics_port))
    meta = wait_until(
        lambda: (m := store.fetch_latest(name)) and m[0].n_learned == 300 and m[0],
        timeout=60,
        what="300 events learned",
    )
    assert (meta.parent, meta.offsets, meta.is_split) == (1, {0: 300}, True)
    # the model went on from v1's artefact and the metrics from v1's training state
    full = Learner.from_spec(spec)
    for e in events:
        full.learn_one(e["features"], e["label"])
    assert meta.metrics == full.metric_values()[0]
    _, blob, training = store.fetch_parts(name, meta.version)
    model = load_state(meta, blob, KEY, training)["model"]
    reference = plain_river(events)
    for e in events[:25]:
        assert model.predict_proba_one(e["features"]) == reference.predict_proba_one(e["features"])

    # both parts' sizes are visible: on the trainer's /metrics and in `streamlearn versions`
    def scraped(part: str) -> float | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        return sample(text, "streamlearn_checkpoint_bytes", model=name, part=part)

    wait_until(lambda: scraped("training") == meta.training_bytes, timeout=20, what="training bytes exported")
    assert scraped("artefact") == meta.blob_bytes
    listing = cli(env, "versions", name, timeout=60)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.split()[0].isdigit()}
    assert (
        size(meta.blob_bytes) in rows[str(meta.version)]
        and size(meta.training_bytes) in rows[str(meta.version)]
    )
    assert (
        "one blob" in rows["1"]
        if form == "one-blob"
        else size(store.meta(name, 1).training_bytes) in rows["1"]
    )
