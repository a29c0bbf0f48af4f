"""Modality names are one safe path segment: nothing is written outside the bundle."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import edit_json

import textme_sdk as tm
from textme_sdk.bundle import check_modality_name

BAD = ["../../escaped", "..", ".", "a/b", "a\\b", "", "/abs", "-x", ".hidden", "x" * 101, "a b",
       "nul\x00", "caf\u00e9", "text", 3]
GOOD = ["image", "audio-2", "3d", "x.y", "A_b", "x" * 100]


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_refused_before_anything_is_added(gapdemo, minilm, name):
    model = tm.TextME(minilm)
    enc = tm.get_encoder("gapdemo", dim=16)
    with pytest.raises(tm.InvalidInputError) as err:
        model.add_modality(enc, tm.Projector(16, 384), tm.Offsets.zeros(16), name=name)
    assert "\n" not in str(err.value)
    assert model.modalities == []
    with pytest.raises(tm.InvalidInputError):
        check_modality_name(name)


def test_non_strings_are_refused_by_the_validator():
    for name in (None, b"image", ["image"]):
        with pytest.raises(tm.InvalidInputError, match="invalid modality name"):
            check_modality_name(name)


@pytest.mark.parametrize("name", GOOD)
def test_good_names_work_end_to_end(gapdemo, minilm, tmp_path, name):
    assert check_modality_name(name) == name
    enc = tm.get_encoder("gapdemo", dim=16)
    model = tm.TextME(minilm).add_modality(enc, tm.Projector(16, 384), tm.Offsets.zeros(16), name=name)
    path = model.save_pretrained(tmp_path / "b")
    assert (path / "modalities" / name / "projector.safetensors").is_file()
    assert tm.TextME.from_pretrained(path).modalities == [name]


def test_text_keeps_its_message(gapdemo, minilm):
    enc = tm.get_encoder("gapdemo", dim=16)
    with pytest.raises(tm.InvalidInputError, match="'text' is reserved for the anchor"):
        tm.TextME(minilm).add_modality(enc, tm.Projector(16, 384), tm.Offsets.zeros(16), name="text")


def test_save_refuses_an_escaping_name_and_writes_nothing(model, tmp_path):
    entry = model.entry("gapdemo")
    model._entries["../../escaped"] = entry  # bypassing add_modality, as old code could
    with pytest.raises(tm.InvalidInputError, match="invalid modality name"):
        model.save_pretrained(tmp_path / "deep" / "er" / "b")
    assert not list(tmp_path.rglob("*escaped*")) and not (tmp_path.parent / "escaped").exists()
    assert not (tmp_path / "deep" / "er" / "b").exists()


def test_names_differing_only_in_case_are_refused_on_save(gapdemo, minilm, tmp_path):
    model = tm.TextME(minilm)
    for name in ("Image", "image"):
        model.add_modality(tm.get_encoder("gapdemo", dim=16), tm.Projector(16, 384),
                           tm.Offsets.zeros(16), name=name)
    with pytest.raises(tm.InvalidInputError, match="differ only in case"):
        model.save_pretrained(tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("key, path, match", [
    ("../../escaped", "modalities/gapdemo", "invalid modality name '../../escaped'"),
    ("text", "modalities/gapdemo", "reserved"),
    ("gapdemo", "../../escaped", "unsafe path"),
    ("gapdemo", "/etc", "unsafe path"),
    ("gapdemo", "modalities/../../x", "unsafe path"),
    ("gapdemo", "modalities\\..\\..\\x", "unsafe path"),
    ("gapdemo", "", "unsafe path"),
])
def test_names_and_paths_in_a_saved_config_are_checked_on_load(bundle, key, path, match):
    def change(cfg):
        entry = cfg["modalities"].pop("gapdemo")
        cfg["modalities"][key] = {**entry, "path": path}

    edit_json(bundle / "config.json", change)
    with pytest.raises(tm.BundleFormatError, match=match) as err:
        tm.TextME.from_pretrained(bundle)
    assert "\n" not in str(err.value)


def test_a_path_inside_the_bundle_other_than_the_default_loads(bundle):
    os.rename(bundle / "modalities/gapdemo", bundle / "modalities/renamed")
    edit_json(bundle / "config.json",
              lambda c: c["modalities"]["gapdemo"].update(path="modalities/renamed"))
    model = tm.TextME.from_pretrained(bundle)
    assert model.modalities == ["gapdemo"]
    assert torch.isfinite(model.embed(["dog#1"], modality="gapdemo", convert_to_tensor=True)).all()
