"""The ``viclip`` encoder: registration, encoding (tiny random ViCLIP), checkpoints in the
published layout (read weights-only, converted to safetensors, loaded strictly), the Hub
path offline, and training end to end through TextME with the real MiniLM anchor."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest
import torch
from textme_viclip import ViCLIPEncoder, ViCLIPLoadError, weights
from viclip_testlib import TINY_ARCH, moving_square, write_video

import textme_sdk as tm
from textme_sdk.errors import (
    EmptyInputError,
    EncoderLoadError,
    InvalidInputError,
    MissingInputFileError,
)
from textme_sdk.testing import check_encoder, check_registration


# -- registration and construction ---------------------------------------------------------
def test_registered_without_importing_heavy_libraries():
    info = check_registration("viclip", heavy=("av", "open_clip"))
    assert info["modality"] == "video" and info["metadata"]["extra"] == "video"
    assert "Apache-2.0" in info["metadata"]["license"], info["metadata"]
    assert info["class"] == "ViCLIPEncoder" and info["embedding_dim"] == 768


def test_construction_is_cheap_and_config_round_trips(tmp_path, monkeypatch):
    enc = ViCLIPEncoder()
    assert enc.embedding_dim == 768 and enc.weights_source == weights.DEFAULT_CHECKPOINTS[
        "ViCLIP-L-14"] == "hf://OpenGVLab/ViCLIP/ViClip-InternVid-10M-FLT.pth"
    assert enc.config() == {"model": "ViCLIP-L-14", "random_init": False, "embedding_dim": 768}
    assert ViCLIPEncoder(**enc.config()).config() == enc.config()
    b16 = ViCLIPEncoder("ViCLIP-B-16", checkpoint="hf://org/repo/b.pth", revision="abc")
    assert b16.embedding_dim == 512
    assert ViCLIPEncoder(**b16.config()).config() == b16.config()
    monkeypatch.chdir(tmp_path)  # local checkpoints are stored absolute
    local = ViCLIPEncoder(checkpoint="w.pth", arch={"vision_layers": 2})
    assert local.config()["checkpoint"] == str(tmp_path / "w.pth")
    assert local.config()["arch"] == {"vision_layers": 2}
    json.dumps(local.config())


def test_bad_construction_arguments_raise_clear_errors():
    with pytest.raises(InvalidInputError, match="unknown ViCLIP model.*ViCLIP-B-16"):
        ViCLIPEncoder("ViT-L-14")
    with pytest.raises(InvalidInputError, match="invalid ViCLIP arch"):
        ViCLIPEncoder(arch={"depth": 3})
    with pytest.raises(EncoderLoadError, match="embedding_dim=512"):  # before any download
        ViCLIPEncoder(embedding_dim=512)
    assert issubclass(ViCLIPLoadError, EncoderLoadError)


# -- encoding ------------------------------------------------------------------------------
def test_shapes_normalisation_and_determinism(tiny_encoder, clip_file):
    frames = moving_square(30, seed=1)
    videos = tiny_encoder.encode_modal([clip_file, frames, torch.from_numpy(frames)])
    assert videos.shape == (3, 16) and videos.dtype == torch.float32
    assert torch.allclose(videos.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(videos[1], videos[2], atol=1e-6)
    again = tiny_encoder.encode_modal([clip_file, frames], batch_size=1)
    assert torch.allclose(again, videos[:2], atol=1e-5)
    text = tiny_encoder.encode_text(["a red square moves right", "a dog", "x"])
    assert text.shape == (3, 16)
    assert torch.allclose(text.norm(dim=1), torch.ones(3), atol=1e-5)
    # alone vs inside a batch: BLAS picks kernels by shape, so equal up to rounding only
    torch.testing.assert_close(tiny_encoder.encode_text(["a dog"])[0], text[1],
                               atol=1e-6, rtol=1e-5)


def test_preprocessing_matches_the_upstream_recipe(tiny_encoder):
    frames = moving_square(20, size=28)  # already 28 x 28: no resize, pure normalisation
    batch = tiny_encoder.preprocess([frames])
    assert batch.shape == (1, 8, 3, 28, 28)
    chosen = frames[[0, 2, 4, 6, 8, 10, 12, 14]].astype(np.float64) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = torch.from_numpy(((chosen - mean) / std).transpose(0, 3, 1, 2)).float()
    assert torch.allclose(batch[0], expected, atol=1e-5)


def test_bad_inputs_surface_as_typed_errors(tiny_encoder, tmp_path):
    with pytest.raises(EmptyInputError):
        tiny_encoder.encode_modal([])
    with pytest.raises(InvalidInputError, match="wrap it in a list"):
        tiny_encoder.encode_modal("clip.mp4")
    with pytest.raises(MissingInputFileError):
        tiny_encoder.encode_modal([tmp_path / "gone.mp4"])
    with pytest.raises(InvalidInputError, match="looks like one image"):
        tiny_encoder.encode_modal([np.zeros((32, 32, 3), np.uint8)])


# -- checkpoints ---------------------------------------------------------------------------
def fake_easydict(monkeypatch) -> type:
    """A class pickled as ``utils.easydict.EasyDict``, like the InternVid training config."""
    module = types.ModuleType("utils.easydict")

    class EasyDict(dict):
        def __init__(self, d=None):
            super().__init__()
            for k, v in (d or {}).items():
                setattr(self, k, v)

        def __setattr__(self, name, value):
            super().__setattr__(name, value)
            self[name] = value

    EasyDict.__module__, EasyDict.__qualname__ = "utils.easydict", "EasyDict"
    module.EasyDict = EasyDict
    monkeypatch.setitem(sys.modules, "utils", types.ModuleType("utils"))
    monkeypatch.setitem(sys.modules, "utils.easydict", module)
    return EasyDict


def test_published_checkpoint_loads_strictly_and_is_cached_as_safetensors(
        tiny_encoder, tmp_path, monkeypatch, clip_file):
    """``{'model': ..., 'config': EasyDict, 'optimizer': ...}`` with DDP ``module.`` keys."""
    EasyDict = fake_easydict(monkeypatch)
    state = {f"module.{k}": v.clone() for k, v in tiny_encoder.network.state_dict().items()}
    config = EasyDict({"model": {"vision_encoder": {"name": "vit_l14"}}, "lr": np.float64(1e-4)})
    ckpt = tmp_path / "ViClip-tiny.pth"
    torch.save({"model": state, "config": config, "epoch": 3,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}}, ckpt)
    with pytest.raises(Exception, match="EasyDict"):  # torch's own weights-only load refuses
        torch.load(ckpt, weights_only=True)
    monkeypatch.delitem(sys.modules, "utils.easydict")  # the class is not even importable

    home = tmp_path / "home"
    monkeypatch.setenv("TEXTME_HOME", str(home))
    enc = ViCLIPEncoder(checkpoint=ckpt, arch=TINY_ARCH, device="cpu")
    inputs, texts = [clip_file, moving_square(16, seed=3)], ["a red square", "a dog"]
    assert torch.allclose(enc.encode_modal(inputs), tiny_encoder.encode_modal(inputs), atol=1e-6)
    assert torch.allclose(enc.encode_text(texts), tiny_encoder.encode_text(texts), atol=1e-6)
    converted = list((home / "viclip").glob("ViClip-tiny-*.safetensors"))
    assert len(converted) == 1

    def no_pickle(path):
        raise AssertionError("the .pth was read again instead of the converted safetensors")

    monkeypatch.setattr(weights, "read_checkpoint", no_pickle)
    again = ViCLIPEncoder(checkpoint=ckpt, arch=TINY_ARCH, device="cpu")
    assert torch.allclose(again.encode_text(texts), tiny_encoder.encode_text(texts), atol=1e-6)


def test_safetensors_checkpoints_load_directly(tiny_encoder, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_encoder.network.state_dict().items()}, path)
    enc = ViCLIPEncoder(checkpoint=path, arch=TINY_ARCH, device="cpu")
    assert torch.allclose(enc.encode_text(["a dog"]), tiny_encoder.encode_text(["a dog"]),
                          atol=1e-6)


def test_mismatched_checkpoints_are_refused_by_name(tiny_encoder, tmp_path):
    state = {k: v.clone() for k, v in tiny_encoder.network.state_dict().items()}
    del state["vision_encoder.temporal_positional_embedding"]
    state["vision_encoder.extra"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ViCLIPLoadError, match="1 missing.*temporal_positional_embedding.*"
                                               "1 unexpected.*vision_encoder.extra"):
        ViCLIPEncoder(checkpoint=path, arch=TINY_ARCH, convert_to_safetensors=False).load("cpu")
    # a B-sized checkpoint for an L-sized model: named shapes and a hint
    b_state = {k: v.clone() for k, v in tiny_encoder.network.state_dict().items()}
    b_state["vision_encoder.proj"] = torch.zeros(768, 512)
    torch.save({"model": b_state}, path)
    with pytest.raises(ViCLIPLoadError, match=r"other shapes.*\(768, 512\) is ViCLIP-B-16"):
        ViCLIPEncoder(checkpoint=path, arch=TINY_ARCH, convert_to_safetensors=False).load("cpu")


def test_checkpoints_with_arbitrary_pickled_objects_are_refused(tiny_encoder, tmp_path,
                                                                monkeypatch):
    module = types.ModuleType("evil")

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    module.Payload = Payload
    Payload.__module__ = "evil"
    monkeypatch.setitem(sys.modules, "evil", module)
    path = tmp_path / "evil.pth"
    torch.save({"model": tiny_encoder.network.state_dict(), "hook": Payload()}, path)
    with pytest.raises(ViCLIPLoadError, match="could not read checkpoint.*safely"):
        ViCLIPEncoder(checkpoint=path, arch=TINY_ARCH).load("cpu")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ViCLIPLoadError, match="corrupt"):
        ViCLIPEncoder(checkpoint=corrupt, arch=TINY_ARCH).load("cpu")
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 1}, empty)
    with pytest.raises(ViCLIPLoadError, match="no tensors|no state dict"):
        ViCLIPEncoder(checkpoint=empty, arch=TINY_ARCH).load("cpu")


def test_missing_weights_fail_fast_with_a_fix(tmp_path):
    with pytest.raises(ViCLIPLoadError, match="checkpoint file not found"):
        ViCLIPEncoder(checkpoint=tmp_path / "nope.pth").load("cpu")
    with pytest.raises(ViCLIPLoadError, match="no default download.*ViCLIP-B_InternVid-FLT-10M"):
        ViCLIPEncoder("ViCLIP-B-16").load("cpu")
    with pytest.raises(ViCLIPLoadError, match="not a Hub file name"):
        ViCLIPEncoder(checkpoint="hf://only-org/file.pth").load("cpu")


def test_hub_checkpoint_offline_comes_from_the_cache_or_fails_fast(tiny_checkpoint, tmp_path):
    """``hf://`` names go through hf_hub_download(local_files_only=...): a file already in the
    Hugging Face cache loads offline; one that is not fails at once with the fix."""
    cache = tmp_path / "hf"
    with pytest.raises(ViCLIPLoadError, match="OpenGVLab/ViCLIP.*not in the Hugging Face cache"):
        ViCLIPEncoder(arch=TINY_ARCH, cache_dir=str(cache), local_files_only=True).load("cpu")
    # lay the file out as huggingface_hub caches it: refs/main -> snapshots/<commit>/<file>
    repo = cache / "models--OpenGVLab--ViCLIP"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "ViClip-InternVid-10M-FLT.pth").write_bytes(tiny_checkpoint.read_bytes())
    enc = ViCLIPEncoder(arch=TINY_ARCH, cache_dir=str(cache), local_files_only=True)
    assert enc.encode_text(["a dog"]).shape == (1, 16)


# -- end to end ----------------------------------------------------------------------------
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220),
           "yellow": (230, 220, 40)}


def captions(n: int) -> list[str]:
    moves = ("moves left to right", "slides across the frame", "crosses a grey background")
    shapes = ("square", "block", "box", "tile")
    out = [f"a {c} {s} {m}" for m in moves for s in shapes for c in COLOURS]
    return out[:n]


def test_trains_end_to_end_and_reloads_from_the_bundle(tiny_checkpoint, tmp_path):
    """offsets -> training -> embed videos -> save -> from_pretrained, via textme_sdk.testing."""
    enc = tm.get_encoder("viclip", checkpoint=str(tiny_checkpoint), arch=TINY_ARCH, device="cpu")
    assert enc.embedding_dim == 16 and not enc.is_loaded
    files = [write_video(tmp_path / f"v{i:02d}.mp4",
                         moving_square(16 + i % 5, colour=list(COLOURS.values())[i % 4], seed=i))
             for i in range(12)]
    result = check_encoder(enc, captions(40), files, tmp_path, atol=1e-6,  # unpaired
                           bad_inputs=[(tmp_path / "gone.mp4", MissingInputFileError)])
    assert result.model.embed(moving_square(20), modality="video").shape == (384,)  # frames
    stored = json.loads((result.bundle / "config.json").read_text())["modalities"]["video"]
    assert stored["encoder"] == {"model": "ViCLIP-L-14", "checkpoint": str(tiny_checkpoint),
                                 "arch": TINY_ARCH, "random_init": False, "embedding_dim": 16}
    # a config stored by earlier versions (defaults left out) rebuilds the same encoder
    old = {"model": "ViCLIP-L-14", "checkpoint": str(tiny_checkpoint), "arch": TINY_ARCH,
           "embedding_dim": 16}
    assert tm.get_encoder("viclip", **old).config() == stored["encoder"]


def test_legacy_pickles_and_damaged_cache_entries(tiny_encoder, tmp_path, monkeypatch):
    """Old (non-zip) ``torch.save`` files load weights-only without mmap; a damaged converted
    safetensors file is rebuilt from the checkpoint instead of failing."""
    monkeypatch.setenv("TEXTME_HOME", str(tmp_path / "home"))
    path = tmp_path / "legacy.pth"
    torch.save({"model": tiny_encoder.network.state_dict()}, path,
               _use_new_zipfile_serialization=False)
    expected = tiny_encoder.encode_text(["a dog"])
    enc = ViCLIPEncoder(checkpoint=path, arch=TINY_ARCH, device="cpu")
    assert torch.allclose(enc.encode_text(["a dog"]), expected, atol=1e-6)
    (converted,) = (tmp_path / "home" / "viclip").glob("legacy-*.safetensors")
    converted.write_bytes(b"damaged")
    enc = ViCLIPEncoder(checkpoint=path, arch=TINY_ARCH, device="cpu")
    assert torch.allclose(enc.encode_text(["a dog"]), expected, atol=1e-6)
    assert converted.stat().st_size > 1000  # rewritten
