"""NaN/inf are never loaded, saved, accepted or returned silently."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import edit_json
from safetensors.torch import load_file, save_file

import textme_sdk as tm

NAN, INF = float("nan"), float("inf")


def _poison(bundle, name, key, value):
    """Put ``value`` into tensor ``key`` of a weight file and record the file's new hash."""
    path = bundle / "modalities/gapdemo" / name
    tensors = load_file(path)
    tensors[key].view(-1)[3] = value
    save_file(tensors, path, metadata={"format": "pt"})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    edit_json(bundle / "modalities/gapdemo/config.json", lambda c: c["sha256"].update({name: sha}))


@pytest.mark.parametrize("name, key, value", [
    ("offsets.safetensors", "mu_text", NAN),
    ("offsets.safetensors", "mu_modal", INF),
    ("projector.safetensors", "net.0.weight", NAN),
    ("projector.safetensors", "net.2.bias", -INF),
])
def test_non_finite_weights_are_refused_on_load(bundle, name, key, value):
    _poison(bundle, name, key, value)
    with pytest.raises(tm.NonFiniteWeightsError, match=rf"{name} holds NaN/inf values in '{key}'"):
        tm.TextME.from_pretrained(bundle)
    assert issubclass(tm.NonFiniteWeightsError, tm.BundleFormatError)


def test_unknown_standard_errors_stay_allowed_and_the_json_stays_strict(gapdemo, minilm, tmp_path):
    model = tm.TextME(minilm).add_modality(tm.get_encoder("gapdemo", dim=16), tm.Projector(16, 384),
                                           tm.Offsets.zeros(16))  # se = nan: unknown
    path = model.save_pretrained(tmp_path / "b")

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    mcfg = json.loads((path / "modalities/gapdemo/config.json").read_text(), parse_constant=refuse)
    assert mcfg["offsets"]["se_text"] is None
    loaded = tm.TextME.from_pretrained(path)
    assert np.isnan(loaded.entry("gapdemo").offsets.se_text)


def test_project_refuses_non_finite_rows(model):
    x = torch.randn(4, 16)
    x[2, 5] = NAN
    with pytest.raises(tm.InvalidEmbeddingError, match=r"1 of 4 rows \(first: \[2\]\)") as err:
        model.project(x, "gapdemo")
    assert "\n" not in str(err.value)
    x[2, 5] = INF
    with pytest.raises(tm.InvalidEmbeddingError):
        model.project(x.numpy(), "gapdemo", branch="text")
    with pytest.raises(tm.InvalidInputError, match="numeric arrays"):
        model.project([["a"] * 16], "gapdemo")
    with pytest.raises(tm.DimensionMismatchError):
        model.project(torch.randn(2, 3, 16), "gapdemo")
    assert model.project(torch.randn(0, 16), "gapdemo").shape == (0, 384)
    out = model.project(torch.randn(3, 16), "gapdemo")
    assert torch.isfinite(out).all() and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


def test_weights_damaged_in_memory_are_caught_at_every_output(model, tmp_path):
    first = model.entry("gapdemo").projector.net[0].weight
    with torch.no_grad():
        first.fill_(INF)  # changed after add_modality checked it
    with pytest.raises(tm.InvalidEmbeddingError, match="NaN/inf values in the projector"):
        model.embed(["dog#1"], modality="gapdemo")
    with pytest.raises(tm.InvalidEmbeddingError):
        model.project(torch.randn(2, 16), "gapdemo")
    with torch.no_grad():
        first.fill_(NAN)
    with pytest.raises(tm.InvalidEmbeddingError):
        model.embed(["a dog"], modality="text", via="gapdemo")
    with pytest.raises(tm.NonFiniteWeightsError, match="projector of modality 'gapdemo' holds NaN/inf "
                       "in 'net.0.weight'"):
        model.save_pretrained(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_saving_over_a_bundle_with_bad_weights_keeps_the_old_one(model, bundle):
    from conftest import tree

    before = tree(bundle)
    model.entry("gapdemo").offsets.mu_modal[0] = INF
    with pytest.raises(tm.NonFiniteWeightsError, match="offsets of modality 'gapdemo'"):
        model.save_pretrained(bundle)
    assert tree(bundle) == before


def test_non_finite_parts_are_refused_when_added(gapdemo, minilm):
    enc = tm.get_encoder("gapdemo", dim=16)
    proj = tm.Projector(16, 384)
    with torch.no_grad():
        proj.net[2].bias[0] = NAN
    with pytest.raises(tm.NonFiniteWeightsError, match="retrain it"):
        tm.TextME(minilm).add_modality(enc, proj, tm.Offsets.zeros(16))
    with pytest.raises(tm.InvalidEmbeddingError, match="mu_text holds NaN/inf"):
        tm.Offsets(torch.full((16,), NAN), torch.zeros(16), 1, 1)


@pytest.mark.parametrize("a, b, error, match", [
    (np.ones((2, 3, 4)), np.ones((1, 4)), tm.InvalidInputError, r"1-D or 2-D.*a of shape \(2, 3, 4\)"),
    (np.ones((2, 4)), np.float32(1.0), tm.InvalidInputError, r"b of shape \(\)"),
    (np.array([[1.0, NAN], [1.0, 0.0]]), np.ones((1, 2)), tm.InvalidEmbeddingError, r"first: \[0\]"),
    (np.ones((1, 2)), np.array([INF, 1.0]), tm.InvalidEmbeddingError, "argument b of similarity"),
    (["x", "y"], np.ones((1, 2)), tm.InvalidInputError, "numeric arrays"),
    (np.ones((1, 3)), np.ones((1, 2)), tm.DimensionMismatchError, "same model"),
])
def test_similarity_checks_its_inputs(a, b, error, match):
    with pytest.raises(error, match=match) as err:
        tm.TextME.similarity(a, b)
    assert "\n" not in str(err.value)


def test_similarity_still_takes_1d_and_2d_of_either_kind():
    a = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    sim = tm.TextME.similarity(a, np.array([3.0, 0.0]))
    assert isinstance(sim, np.ndarray) and sim.shape == (2, 1)
    np.testing.assert_allclose(sim[:, 0], [1.0, 0.0], atol=1e-6)
    assert isinstance(tm.TextME.similarity(torch.tensor(a), a), torch.Tensor)
    assert tm.TextME.similarity(np.zeros((0, 2)), a).shape == (0, 2)
