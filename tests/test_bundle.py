"""Bundle format: round trip, strictness, integrity, atomic writes, never unpickling."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil

import numpy as np
import pytest
import torch

import textme_sdk as tm
from textme_sdk import bundle as bundle_mod


@pytest.fixture
def model(gapdemo, minilm):
    enc = tm.get_encoder("gapdemo", dim=16)
    torch.manual_seed(0)
    proj = tm.Projector(16, 384)
    offsets = tm.Offsets.from_embeddings(torch.randn(20, 16), torch.randn(20, 16))
    return tm.TextME(minilm).add_modality(enc, proj, offsets, info={"training": {"epochs": 1}})


def test_layout_and_roundtrip(model, tmp_path, minilm):
    path = model.save_pretrained(tmp_path / "b")
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert files == ["README.md", "config.json", "modalities/gapdemo/config.json",
                     "modalities/gapdemo/offsets.safetensors", "modalities/gapdemo/projector.safetensors"]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["similarity"] == "cosine"
    assert cfg["anchor"]["plugin"] == "minilm" and cfg["anchor"]["embedding_dim"] == 384
    assert cfg["modalities"]["gapdemo"]["encoder"] == {"dim": 16, "gap": 1.5, "noise": 0.3, "seed": 0}
    loaded = tm.TextME.from_pretrained(path)
    x = ["dog#1", "cat#2"]
    np.testing.assert_allclose(loaded.embed(x, modality="gapdemo"), model.embed(x, modality="gapdemo"),
                               atol=1e-6)


def _weights(path):
    return path / "modalities/gapdemo/projector.safetensors"


def test_tampered_file_is_detected(model, tmp_path):
    path = model.save_pretrained(tmp_path / "b")
    data = bytearray(_weights(path).read_bytes())
    data[-3] ^= 0xFF
    _weights(path).write_bytes(bytes(data))
    with pytest.raises(tm.BundleIntegrityError, match="sha256"):
        tm.TextME.from_pretrained(path)


def test_truncated_file_is_detected_even_when_its_hash_was_updated(model, tmp_path):
    path = model.save_pretrained(tmp_path / "b")
    mcfg_path = path / "modalities/gapdemo/config.json"
    mcfg = json.loads(mcfg_path.read_text())
    _weights(path).write_bytes(_weights(path).read_bytes()[:100])
    mcfg["sha256"]["projector.safetensors"] = hashlib.sha256(_weights(path).read_bytes()).hexdigest()
    mcfg_path.write_text(json.dumps(mcfg))
    with pytest.raises(tm.BundleIntegrityError, match="not a valid safetensors"):
        tm.TextME.from_pretrained(path)


def test_missing_hashes_are_refused_not_skipped(model, tmp_path):
    path = model.save_pretrained(tmp_path / "b")
    mcfg_path = path / "modalities/gapdemo/config.json"
    mcfg = json.loads(mcfg_path.read_text())
    del mcfg["sha256"]
    mcfg_path.write_text(json.dumps(mcfg))
    with pytest.raises(tm.BundleFormatError, match="'sha256' must be an object"):
        tm.TextME.from_pretrained(path)


def test_wrong_shapes_fail_strictly(model, tmp_path):
    path = model.save_pretrained(tmp_path / "b")
    mcfg_path = path / "modalities/gapdemo/config.json"
    mcfg = json.loads(mcfg_path.read_text())
    mcfg["projector"]["hidden_dim"] = 8
    mcfg_path.write_text(json.dumps(mcfg))
    with pytest.raises(tm.BundleFormatError, match="does not fit"):
        tm.TextME.from_pretrained(path)


def test_pickle_is_never_used(model, tmp_path, monkeypatch):
    path = model.save_pretrained(tmp_path / "b")

    def forbidden(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert tm.TextME.from_pretrained(path).modalities == ["gapdemo"]


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda c: c.update(format_version=99), tm.BundleVersionError, "pip install -U"),
        (lambda c: c.pop("format_version"), tm.BundleFormatError, "format_version"),
        (lambda c: c.update(modalities=[]), tm.BundleFormatError, "'modalities'"),
        (lambda c: c["modalities"]["gapdemo"].update(path="../../etc"), tm.BundleFormatError, "unsafe"),
        (lambda c: c["anchor"].pop("plugin"), tm.BundleFormatError, "'anchor'"),
        (lambda c: c["modalities"]["gapdemo"].update(plugin="no-such"), tm.UnknownPluginError, "no encoder named 'no-such'"),
    ],
)
def test_bad_configs_give_typed_errors(model, tmp_path, mutate, error, match):
    path = model.save_pretrained(tmp_path / "b")
    cfg = json.loads((path / "config.json").read_text())
    mutate(cfg)
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(error, match=match):
        tm.TextME.from_pretrained(path)


def test_missing_and_garbage(model, tmp_path):
    with pytest.raises(tm.MissingFileError, match="not a textme bundle"):
        tm.TextME.from_pretrained(tmp_path)
    path = model.save_pretrained(tmp_path / "b")
    (path / "modalities/gapdemo/offsets.safetensors").unlink()
    with pytest.raises(tm.MissingFileError, match="offsets"):
        tm.TextME.from_pretrained(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(tm.BundleFormatError, match="not valid JSON"):
        tm.TextME.from_pretrained(path)


def test_crash_mid_write_leaves_old_bundle_intact(model, tmp_path, monkeypatch):
    path = model.save_pretrained(tmp_path / "b")
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}

    def crash(folder, entry):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_mod, "_write_modality", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(path)
    after = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert before == after
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temporary folders left


def test_hand_written_card_is_kept(model, tmp_path):
    path = model.save_pretrained(tmp_path / "b")
    assert bundle_mod.GENERATED_MARK in (path / "README.md").read_text()
    (path / "README.md").write_text("# my card\n")
    model.save_pretrained(path)
    assert (path / "README.md").read_text() == "# my card\n"


def test_partial_modalities_and_unknown(model, tmp_path):
    path = model.save_pretrained(tmp_path / "b")
    assert tm.TextME.from_pretrained(path, modalities=[]).modalities == []
    with pytest.raises(tm.UnknownModalityError, match="has no modality 'audio'"):
        tm.TextME.from_pretrained(path, modalities=["audio"])
