"""The trainer's load interns a checkpoint's strings: a restored model's feature names are
then the objects its events arrive with (stream/handover.py), as in a model learned anew."""

from __future__ import annotations

import sys

from river import preprocessing

from model_store.snapshot import dump_parts, dump_state, load_model, load_state, sign
from tests.helpers.factories import snapshot_meta


def a_scaler(name: str) -> preprocessing.StandardScaler:
    scaler = preprocessing.StandardScaler()
    scaler.learn_one({name: 1.0})
    return scaler


def the_name(prefix: str) -> str:
    """The name, as a new object: equal strings built at run time are never interned."""
    return "".join([prefix, "_feature"])


def test_a_restored_models_names_are_the_interned_ones():
    blob = dump_state({"model": a_scaler(the_name("streamlearn_one_blob")), "n_learned": 1})
    model = load_state(sign(snapshot_meta(1), blob, None), blob, None)["model"]
    (key,) = model.counts
    assert sys.intern(the_name("streamlearn_one_blob")) is key


def test_in_a_split_checkpoint_the_champions_names_win():
    state = {
        "model": a_scaler(the_name("streamlearn_split")),
        "n_learned": 1,
        "challengers": {"c": a_scaler(the_name("streamlearn_split"))},
    }
    blob, training = dump_parts(state)
    restored = load_state(sign(snapshot_meta(1), blob, None, training), blob, None, training)
    (champion,) = restored["model"].counts
    (challenger,) = restored["challengers"]["c"].counts
    assert sys.intern(the_name("streamlearn_split")) is champion
    assert challenger == champion


def test_the_serving_load_interns_nothing():
    blob = dump_state({"model": a_scaler(the_name("streamlearn_served")), "n_learned": 1})
    (key,) = load_model(sign(snapshot_meta(1), blob, None), blob, None).counts
    assert sys.intern(the_name("streamlearn_served")) is not key
