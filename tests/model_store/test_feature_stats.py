"""Per-feature statistics and the PSI data-drift score shared by trainer and API."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from model_store.feature_stats import OTHER, psi, psi_scores, summarize
from model_store.snapshot import _ADDED_LATER, IncompatibleSnapshot, SnapshotMeta, sign, verify

THRESHOLD = 0.25  # DataDriftConfig default


def training(n: int = 2000, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "amount": rng.gauss(100, 15),
            "age": rng.randint(18, 80),
            "colour": rng.choice(["red", "green", "blue"]),
            "member": rng.random() < 0.3,
            **({"note": rng.random()} if rng.random() < 0.8 else {}),
        }
        for _ in range(n)
    ]


def test_summaries_describe_numeric_categorical_and_missing_features():
    stats = summarize(training(), bins=10)
    amount = stats["amount"]
    assert amount.kind == "numeric" and amount.n == 2000 and amount.missing == 0
    assert len(amount.edges) == 9 and len(amount.shares) == 10
    assert sum(amount.shares) == pytest.approx(1.0)
    assert all(s == pytest.approx(0.1, abs=0.01) for s in amount.shares)  # quantile bins
    assert amount.mean == pytest.approx(100, abs=2) and amount.std == pytest.approx(15, abs=1.5)
    assert stats["colour"].kind == "categorical"
    assert set(stats["colour"].categories) == {"red", "green", "blue"}
    assert stats["member"].kind == "categorical" and set(stats["member"].categories) == {"true", "false"}
    assert stats["note"].missing == pytest.approx(0.2, abs=0.03)


def test_a_shifted_feature_is_flagged_and_unshifted_ones_are_not():
    reference = summarize(training(seed=1))
    live = training(1000, seed=2)
    for x in live:
        x["amount"] += 15  # one standard deviation
    scores = psi_scores(reference, live)
    assert scores["amount"] >= THRESHOLD, scores
    assert all(scores[f] < 0.1 for f in ("age", "colour", "member", "note")), scores


def test_new_categories_and_missing_values_count_as_drift():
    reference = summarize(training())
    new_colour = [{**x, "colour": "purple"} for x in training(500, seed=3)]
    assert psi(reference["colour"], [x["colour"] for x in new_colour]) >= THRESHOLD
    assert psi(reference["amount"], [None] * 500) >= THRESHOLD  # the feature stopped arriving
    assert psi(reference["amount"], ["text"] * 500) >= THRESHOLD  # a number became a string


def test_rare_categories_are_grouped_and_scored_as_other():
    rng = random.Random(5)
    samples = [{"city": f"c{int(rng.paretovariate(1.2))}"} for _ in range(3000)]
    stats = summarize(samples, max_categories=5)["city"]
    assert len(stats.categories) == 6 and OTHER in stats.categories
    assert psi(stats, [x["city"] for x in samples[:1000]]) < 0.1


def test_empty_samples_have_no_statistics_and_no_scores():
    assert summarize([]) == {}
    assert psi_scores(summarize(training()), []) == {}


def test_snapshots_signed_before_feature_stats_existed_still_verify():
    key = b"secret"
    meta = sign(SnapshotMeta(model="m", task="classification", topic="m", n_learned=3), b"blob", key)
    # the payload an older trainer signed: none of the fields added later at all
    old = meta.model_dump_json(exclude={"signature", *_ADDED_LATER}).encode()
    old_signed = meta.model_copy(update={"signature": hmac.new(key, old, hashlib.sha256).hexdigest()})
    verify(old_signed, b"blob", key)
    with_stats = sign(meta.model_copy(update={"feature_stats": summarize(training(100))}), b"blob", key)
    verify(with_stats, b"blob", key)
    tampered = with_stats.model_copy(update={"feature_stats": {}})
    with pytest.raises(IncompatibleSnapshot, match="signature"):
        verify(tampered, b"blob", key)
