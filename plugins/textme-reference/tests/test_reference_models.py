"""The reference two-tower models, their files, and a tiny pretraining run."""

from __future__ import annotations

import json

import pytest
import torch

from textme_reference import models, pretrain, world


def test_tokenizer_is_deterministic_with_unk_and_truncation():
    tok = models.WordTokenizer(["a", "dog", "red"], max_len=4)
    ids, padding = tok(["a red dog", "A zebra!", "a a a a a a"])
    cls, unk = tok.index["[CLS]"], tok.index["[UNK]"]
    assert ids[0].tolist() == [cls, tok.index["a"], tok.index["red"], tok.index["dog"]]
    assert ids[1, :3].tolist() == [cls, tok.index["a"], unk] and padding[1, 3]
    assert ids.shape == (3, 4) and not padding[2].any()
    assert torch.equal(tok(["a red dog"])[0], tok(["a red dog"])[0])


@pytest.mark.parametrize("modality,dim,shape", [("image", 64, (3, 3, 32, 32)), ("audio", 48, (3, 6000))])
def test_towers_map_to_their_own_dimension(modality, dim, shape):
    torch.manual_seed(0)
    model = models.build_model(models.default_config(modality)).eval()
    with torch.no_grad():
        assert model.encode_modal(torch.rand(shape)).shape == (3, dim)
        assert model.encode_text(["a dog", "a cat on the grass", "xyz"]).shape == (3, dim)


def test_mel_filterbank_covers_every_band():
    fb = models.mel_filterbank(40, 256, 8000)
    assert fb.shape == (40, 129)
    assert (fb.sum(dim=1) > 0).all()


def test_save_and_strict_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = models.build_model(models.default_config("audio")).eval()
    path = models.save_model(model, tmp_path / "audio.safetensors", {"note": "test"})
    doc = json.loads(path.with_suffix(".json").read_text())
    assert doc["format"] == models.CONFIG_FORMAT and doc["note"] == "test"
    again = models.load_model(path)
    texts = ["a dog barking twice"]
    with torch.no_grad():
        assert torch.equal(model.encode_text(texts), again.encode_text(texts))

    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    tensors.pop("logit_scale")
    save_file(tensors, str(path))
    with pytest.raises(RuntimeError, match="logit_scale"):
        models.load_model(path)


def test_training_batches_are_deterministic():
    x1, c1 = pretrain.training_step_batch("image", 8, seed=0, step=5)
    x2, c2 = pretrain.training_step_batch("image", 8, seed=0, step=5)
    x3, _ = pretrain.training_step_batch("image", 8, seed=0, step=6)
    assert torch.equal(x1, x2) and c1 == c2 and not torch.equal(x1, x3)


def test_default_steps_per_modality():
    assert pretrain.PretrainSettings("image").steps == pretrain.DEFAULT_STEPS["image"]
    assert pretrain.PretrainSettings("audio", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown modality"):
        pretrain.PretrainSettings("video")


def test_learning_rate_warms_up_then_decays():
    s = pretrain.PretrainSettings("image", steps=100, warmup_steps=10, lr=1.0)
    assert pretrain.learning_rate(0, s) == pytest.approx(0.1)
    assert pretrain.learning_rate(10, s) == pytest.approx(1.0)
    assert pretrain.learning_rate(99, s) < 0.01


@pytest.fixture
def one_thread():
    """Pretraining runs single-threaded (fast on a busy machine, reproducible everywhere)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("modality", world.MODALITIES)
def test_tiny_pretraining_run_lowers_the_loss(modality, one_thread):
    settings = pretrain.PretrainSettings(modality, steps=30, batch_size=32, warmup_steps=3)
    result = pretrain.pretrain(settings)
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < first - 0.3, result.losses
    summary = result.summary(settings)
    assert summary["settings"]["steps"] == 30 and summary["seconds"] >= 0
