"""Training under bad settings and faults: every TrainConfig field is checked before any work,
a diverging run stops with a typed error and saves nothing, checkpoints record their data and
refuse to resume on anything else, damaged checkpoints are named."""

from __future__ import annotations

import math

import pytest
import torch

import textme_sdk as tm
from textme_sdk.engine import TrainConfig, fit_projector


def _data(n: int = 96, d_in: int = 8, d_out: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g)
    y = torch.nn.functional.normalize(x @ torch.randn(d_in, d_out, generator=g), dim=1)
    return x, y


@pytest.mark.parametrize("field, value, rule", [
    ("epochs", -1, "an integer >= 1"),
    ("epochs", 0, "an integer >= 1"),
    ("epochs", 2.5, "an integer >= 1"),
    ("batch_size", 1, "an integer >= 2"),
    ("batch_size", 0, "an integer >= 2"),
    ("lr", 1e30, "a finite number in \\(0, 1000\\]"),
    ("lr", -1e-3, "a finite number in \\(0, 1000\\]"),
    ("lr", math.nan, "a finite number in \\(0, 1000\\]"),
    ("temperature", 0.0, "> 0"),
    ("window", (0.9, 0.1), "0 <= low < high <= 1"),
    ("window", (0.1, 1.5), "0 <= low < high <= 1"),
    ("window", "wide", "0 <= low < high <= 1"),
    ("betas", (0.9, 1.0), "two numbers in \\[0, 1\\)"),
    ("warmup_ratio", 1.0, "in \\[0, 1\\)"),
    ("val_fraction", -0.1, "in \\[0, 1\\)"),
    ("hidden_dim", -5, "None or an integer >= 1"),
    ("dropout", 1.0, "in \\[0, 1\\)"),
    ("input_noise", math.inf, "a finite number >= 0"),
    ("grad_clip", -1, "a finite number >= 0"),
    ("precision", "fp8", "one of"),
    ("seed", -3, "an integer >= 0"),
    ("loss", "", "the name of a registered loss"),
])
def test_every_field_is_validated_when_built(field, value, rule):
    with pytest.raises(tm.InvalidInputError, match=f"TrainConfig.{field} must be .*{rule}"):
        TrainConfig(**{field: value})


def test_fields_changed_after_construction_are_checked_before_training():
    cfg = TrainConfig(epochs=1, batch_size=16)
    cfg.epochs = -1  # e.g. set by a CLI option after the config was built
    x, y = _data()
    with pytest.raises(tm.InvalidInputError, match="TrainConfig.epochs"):
        fit_projector(x, y, cfg)


def test_a_diverging_run_stops_typed_and_saves_nothing(tmp_path):
    x, y = _data()
    calls = {"n": 0}

    def blows_up_at_step_9(queries, keys, cfg):
        calls["n"] += 1
        loss = 1 - torch.nn.functional.cosine_similarity(queries, keys).mean()
        return loss * math.inf if calls["n"] >= 9 else loss

    cfg = TrainConfig(epochs=4, batch_size=16, val_fraction=0)  # 6 steps an epoch
    ckpt = tmp_path / "ckpt"
    with pytest.raises(tm.TrainingDivergedError, match="diverged at step 9: the loss is inf.*"
                                                       "nothing was saved. Lower the learning rate"):
        fit_projector(x, y, cfg, checkpoint_dir=ckpt, show_progress_bar=False,
                      loss_fn=blows_up_at_step_9)
    from safetensors.torch import load_file

    from textme_sdk.engine.trainer import _load_checkpoint

    tensors, state = _load_checkpoint(ckpt)
    assert state["step"] == 6  # the last checkpoint is the finished first epoch
    assert all(torch.isfinite(t).all() for t in tensors.values())


def test_non_finite_training_data_is_refused_before_training():
    x, y = _data()
    x[3, 2] = math.nan
    with pytest.raises(tm.InvalidEmbeddingError, match=r"inputs hold NaN/inf in 1 rows \(first: \[3\]\)"):
        fit_projector(x, y, TrainConfig(epochs=1, batch_size=16))


def test_resume_refuses_other_data_and_other_configs(tmp_path):
    x, y = _data()
    cfg = TrainConfig(epochs=2, batch_size=16)
    ckpt = tmp_path / "ckpt"
    fit_projector(x, y, cfg, checkpoint_dir=ckpt, show_progress_bar=False,
                  fingerprint={"texts": "a.txt"})
    x2, _ = _data(seed=1)
    with pytest.raises(tm.TrainingCheckpointError, match="trained on other data.*a.txt"):
        fit_projector(x2, y, cfg, checkpoint_dir=ckpt, resume=True,
                      fingerprint={"texts": "b.txt"})
    with pytest.raises(tm.TrainingCheckpointError, match="different TrainConfig \\(differs in: lr\\)"):
        fit_projector(x, y, TrainConfig(epochs=2, batch_size=16, lr=1e-3), checkpoint_dir=ckpt,
                      resume=True)
    same = fit_projector(x, y, cfg, checkpoint_dir=ckpt, resume=True, show_progress_bar=False)
    assert same.steps > 0  # the same data and config resume


def test_a_damaged_checkpoint_is_named(tmp_path):
    x, y = _data()
    cfg = TrainConfig(epochs=1, batch_size=16)
    ckpt = tmp_path / "ckpt"
    fit_projector(x, y, cfg, checkpoint_dir=ckpt, show_progress_bar=False)
    (ckpt / "state.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(tm.TrainingCheckpointError, match="damaged or incomplete.*delete that folder"):
        fit_projector(x, y, cfg, checkpoint_dir=ckpt, resume=True)


def test_train_projector_resume_with_other_texts_is_refused(minilm, tmp_path):
    from test_plugin_contract import BatchStyle

    enc = BatchStyle()
    ckpt = tmp_path / "ckpt"
    cfg = TrainConfig(epochs=1, batch_size=4)
    texts = [f"text number {i}" for i in range(24)]
    tm.train_projector(enc, minilm, texts, tm.Offsets.zeros(4), cfg, cache=False,
                       checkpoint_dir=ckpt)
    with pytest.raises(tm.TrainingCheckpointError, match="other data"):
        tm.train_projector(enc, minilm, texts[:20] + ["something else"] * 4, tm.Offsets.zeros(4),
                           cfg, cache=False, checkpoint_dir=ckpt, resume=True)
