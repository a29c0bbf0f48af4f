"""Fixtures of the reliability tests: small bundles built from the gapdemo test plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import textme_sdk as tm


def make_model(minilm, seed: int = 0, names: tuple[str, ...] = ("gapdemo",), hidden: int | None = None):
    """A TextME model with 16-d gapdemo modalities and random projectors (no training)."""
    torch.manual_seed(seed)
    model = tm.TextME(minilm)
    for name in names:
        enc = tm.get_encoder("gapdemo", dim=16, seed=seed)
        model.add_modality(enc, tm.Projector(16, 384, hidden_dim=hidden),
                           tm.Offsets.from_embeddings(torch.randn(20, 16), torch.randn(20, 16)),
                           name=name, info={"training": {"epochs": 1}})
    return model


@pytest.fixture
def model(gapdemo, minilm):
    return make_model(minilm)


@pytest.fixture
def bundle(model, tmp_path) -> Path:
    return model.save_pretrained(tmp_path / "b")


def edit_json(path: Path, change) -> None:
    """Apply ``change`` to the JSON object in ``path`` and write it back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links followed) with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}
