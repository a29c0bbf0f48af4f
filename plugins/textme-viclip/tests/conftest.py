"""Shared helpers of the ``viclip`` plugin tests: a tiny ViCLIP config (the real architecture,
small sizes), tiny video files written with PyAV, and published-format checkpoints."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch
from viclip_testlib import TINY_ARCH, moving_square, write_video  # noqa: E402


@pytest.fixture(scope="session")
def tiny_encoder():
    """The tiny ViCLIP with random weights (seeded), loaded on CPU."""
    from textme_viclip import ViCLIPEncoder

    torch.manual_seed(0)
    return ViCLIPEncoder(arch=TINY_ARCH, random_init=True, device="cpu").load()


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_encoder, tmp_path_factory) -> Path:
    """The tiny model saved as upstream saves ViCLIP: ``torch.save({'model': state_dict})``."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny_viclip.pth"
    state = {k: v.detach().clone() for k, v in tiny_encoder.network.state_dict().items()}
    torch.save({"model": state, "epoch": 9, "global_step": 1234}, path)
    return path


@pytest.fixture(scope="session")
def clip_file(tmp_path_factory) -> Path:
    """A 20-frame 32 x 32 MPEG-4 clip."""
    folder = tmp_path_factory.mktemp("videos")
    return write_video(folder / "square.mp4", moving_square(20))
