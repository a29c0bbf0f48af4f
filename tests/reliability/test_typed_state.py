"""Typed state: training results, the load source and entry metadata are declared fields, and
stored metadata never overrides what a save computes."""

from __future__ import annotations

import json

import pytest
import torch

import textme_sdk as tm
from textme_sdk.bundle import ModalityEntry


def test_readding_a_loaded_modality_with_a_wider_projector_saves_the_new_shape(bundle, tmp_path):
    loaded = tm.TextME.from_pretrained(bundle)
    old = loaded.entry("gapdemo")
    wider = tm.Projector(16, 384, hidden_dim=64)
    loaded.add_modality(old.encoder, wider, old.offsets, name="gapdemo", info=old.info)
    path = loaded.save_pretrained(tmp_path / "wider")
    mcfg = json.loads((path / "modalities/gapdemo/config.json").read_text())
    assert mcfg["projector"]["hidden_dim"] == 64
    again = tm.TextME.from_pretrained(path)
    assert again.entry("gapdemo").projector.hidden_dim == 64
    x = torch.randn(3, 16)
    assert torch.allclose(again.project(x, "gapdemo"), loaded.project(x, "gapdemo"), atol=1e-6)


def test_stored_values_never_override_computed_ones(gapdemo, minilm, tmp_path):
    offsets = tm.Offsets.from_embeddings(torch.randn(30, 16), torch.randn(40, 16))
    stale = {"projector": {"in_dim": 1, "out_dim": 1, "hidden_dim": 1},
             "sha256": {"projector.safetensors": "0" * 64},
             "offsets": {"n_text": 999, "gap": -1.0, "texts": "captions.txt"},
             "training": {"epochs": 3}, "metrics": {"R@1": 51.7}}
    model = tm.TextME(minilm).add_modality(tm.get_encoder("gapdemo", dim=16), tm.Projector(16, 384),
                                           offsets, info=stale)
    entry = model.entry("gapdemo")
    assert entry.training == {"epochs": 3} and entry.offsets_info == {"texts": "captions.txt"}
    assert entry.extra == {"metrics": {"R@1": 51.7}}
    assert entry.info["offsets"]["n_text"] == 30 and entry.info["offsets"]["texts"] == "captions.txt"
    path = model.save_pretrained(tmp_path / "b")
    mcfg = json.loads((path / "modalities/gapdemo/config.json").read_text())
    assert mcfg["projector"] == tm.Projector(16, 384).config()
    assert mcfg["offsets"]["n_text"] == 30 and mcfg["offsets"]["n_modal"] == 40
    assert mcfg["offsets"]["gap"] == pytest.approx(offsets.gap)
    assert mcfg["metrics"] == {"R@1": 51.7} and mcfg["training"] == {"epochs": 3}
    assert "name: gapdemo/R@1, type: R@1, value: 51.7" in (path / "README.md").read_text()
    reloaded = tm.TextME.from_pretrained(path).entry("gapdemo")
    assert reloaded.extra == {"metrics": {"R@1": 51.7}} and reloaded.training == {"epochs": 3}


def test_info_of_the_wrong_type_is_refused(gapdemo, minilm):
    enc = tm.get_encoder("gapdemo", dim=16)
    for info in ({"training": [1]}, {"offsets": "x"}, ["training"]):
        with pytest.raises(tm.InvalidInputError, match="must be a dict"):
            tm.TextME(minilm).add_modality(enc, tm.Projector(16, 384), tm.Offsets.zeros(16), info=info)


def test_training_result_is_a_declared_attribute(gapdemo, minilm, tmp_path):
    assert "training_result" in tm.Projector.__annotations__
    assert tm.Projector(16, 384).training_result is None
    enc = tm.get_encoder("gapdemo", dim=16)
    texts = [f"a {c} {w}" for c in ("dog", "cat", "car") for w in ("runs", "sits", "sleeps")]
    projector = tm.train_projector(enc, minilm, texts, tm.Offsets.zeros(16),
                                   tm.TrainConfig(epochs=1, batch_size=4), cache=False)
    assert isinstance(projector.training_result, tm.TrainResult)
    model = tm.TextME(minilm).add_modality(enc, projector, tm.Offsets.zeros(16))
    assert model.entry("gapdemo").training == projector.training_result.summary()
    path = model.save_pretrained(tmp_path / "b")
    loaded = tm.TextME.from_pretrained(path)
    assert loaded.entry("gapdemo").training["epochs"] == 1
    assert loaded.entry("gapdemo").projector.training_result is None  # a loaded projector


def test_source_and_bundle_path(model, tmp_path):
    assert model.source is None and model.bundle_path is None
    path = model.save_pretrained(tmp_path / "b")
    assert model.source is None  # saving does not change where a model came from
    loaded = tm.TextME.from_pretrained(path)
    assert loaded.source == path and loaded.bundle_path == path
    with pytest.raises(AttributeError):
        loaded.bundle_path = tmp_path  # read-only; set `source` instead


def test_entry_fields_are_typed_and_info_is_a_view(model):
    entry = model.entry("gapdemo")
    assert isinstance(entry, ModalityEntry)
    assert set(ModalityEntry.__dataclass_fields__) == {"encoder", "projector", "offsets", "training",
                                                      "offsets_info", "extra", "bridges",
                                                      "bridge_info", "recentring"}
    view = entry.info
    view["training"]["epochs"] = 99  # a copy: editing it changes nothing
    assert entry.training == {"epochs": 1}
