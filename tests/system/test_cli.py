"""The `streamlearn` commands users run: publish from files, score a file."""

from __future__ import annotations

import csv

import orjson
from river import compose, datasets, linear_model, preprocessing

from model_store.snapshot import SnapshotMeta, dump_state
from model_store.store import CheckpointStore
from tests.helpers.processes import SIGNING_KEY, Env, cli, wait_until, write_spec

ROWS = list(datasets.Phishing().take(120))


def test_publish_replays_csv_and_jsonl_files_into_the_topic(env: Env, store: CheckpointStore, tmp_path):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    path_csv = tmp_path / "events.csv"
    with path_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*ROWS[0][0], "is_phishing"])
        writer.writeheader()
        for x, y in ROWS[:70]:
            writer.writerow({**x, "is_phishing": str(y).lower()})
    path_jsonl = tmp_path / "events.jsonl"
    path_jsonl.write_bytes(b"".join(orjson.dumps({"features": x, "label": y}) + b"\n" for x, y in ROWS[70:]))

    first = cli(env, "publish", "--model", name, str(path_csv), "--label-column", "is_phishing")
    assert first.returncode == 0, first.stderr
    assert "published 70 events" in first.stdout
    second = cli(env, "publish", "--model", name, str(path_jsonl), "--rate", "500")
    assert second.returncode == 0, second.stderr
    env.start_trainer(name)
    meta, _ = wait_until(
        lambda: (m := store.fetch_latest(name)) and m[0].n_learned == 120 and m,
        timeout=60,
        what="120 events learned",
    )
    assert meta.offsets == {0: 120}

    missing = cli(env, "publish", "--model", name, str(path_csv), "--label-column", "nope")
    assert missing.returncode == 2 and "neither 'features' nor 'nope'" in missing.stderr


def test_score_writes_one_prediction_per_row_with_the_served_version(
    env: Env, store: CheckpointStore, tmp_path
):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in ROWS[:100]:
        model.learn_one(x, y)
    meta = SnapshotMeta(model=name, task="classification", topic=name, n_learned=100)
    version = store.publish(
        meta, dump_state({"model": model}), keep=3, signing_key=SIGNING_KEY.encode()
    ).version
    path = tmp_path / "to-score.jsonl"
    lines = [orjson.dumps({**x, "label": y}) for x, y in ROWS[100:]] + [orjson.dumps({"long_url": "oops"})]
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = cli(env, "score", name, str(path), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 1, result.stderr  # one row could not be scored
    out = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(out) == len(lines)
    assert {o["version"] for o in out} == {version}
    for o, (x, _) in zip(out, ROWS[100:], strict=False):
        assert o["prediction"] == model.predict_one(x)
    assert "error" in out[-1] and "TypeError" in out[-1]["error"]
    assert f"scored 20 rows with {name} v{version}; 1 refused" in result.stderr
