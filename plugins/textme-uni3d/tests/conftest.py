"""Shared fixtures: a tiny open_clip text config, a tiny Uni3D architecture (the real modules,
small sizes) with random weights, and both saved as checkpoint files in upstream layouts."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from uni3d_testdata import TINY_ARCH, TINY_CLIP, TINY_CLIP_CFG, TINY_CLIP_ROOT


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """Register the tiny open_clip configs; returns the custom-text one's name."""
    import open_clip

    folder = tmp_path_factory.mktemp("open_clip_cfg")
    (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CLIP_CFG))
    classic = {**TINY_CLIP_CFG, "custom_text": False}
    (folder / f"{TINY_CLIP_ROOT}.json").write_text(json.dumps(classic))
    open_clip.add_model_config(folder)
    return TINY_CLIP


@pytest.fixture(scope="session")
def clip_weights(tiny_clip, tmp_path_factory):
    """A full tiny open_clip model (image tower included, as in the real checkpoint) saved as
    ``open_clip_pytorch_model.bin``; returns ``(model, path)``."""
    import open_clip

    torch.manual_seed(1)
    model = open_clip.create_model(tiny_clip, pretrained=None).eval()
    path = tmp_path_factory.mktemp("clip") / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="session")
def tiny_uni3d():
    """A tiny Uni3D model with random weights (BN statistics made non-trivial)."""
    from textme_uni3d.arch import resolve_model
    from textme_uni3d.model import build_uni3d

    torch.manual_seed(0)
    model = build_uni3d(resolve_model("tiny", TINY_ARCH)[0])
    with torch.no_grad():
        # timm's init (std 0.02) makes a random model's output almost input-independent;
        # fan-in scaled weights keep the tiny model sensitive to its input.
        for name, param in model.named_parameters():
            if param.ndim > 1:
                param.normal_(0, param[0].numel() ** -0.5)
            else:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)  # norms: ~1
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def uni3d_checkpoint(tiny_uni3d, tmp_path_factory):
    """The tiny model saved like upstream's ``model.pt``: DeepSpeed model states with the
    weights under ``module`` and keys prefixed ``module.``."""
    from collections import OrderedDict

    state = OrderedDict((f"module.{k}", v.clone()) for k, v in tiny_uni3d.state_dict().items())
    shapes = OrderedDict((k, v.shape) for k, v in state.items())
    path = tmp_path_factory.mktemp("uni3d") / "model.pt"
    torch.save({"module": state, "buffer_names": [k for k in state if "running" in k],
                "optimizer": None, "param_shapes": [shapes], "global_steps": 1000,
                "ds_version": "0.10.0", "epoch": 200, "best_acc1": 53.5}, path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tiny_clip, clip_weights, uni3d_checkpoint):
    """The tiny encoder, built through the public API from the two checkpoint files."""
    from textme_uni3d import Uni3DEncoder

    return Uni3DEncoder("tiny", arch=TINY_ARCH, checkpoint=str(uni3d_checkpoint),
                        clip_model=tiny_clip, clip_pretrained=str(clip_weights[1]),
                        device="cpu").load()
