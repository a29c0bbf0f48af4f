"""The ref-image / ref-audio plugins: contract, inputs, shipped quality and modality gap."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import torch

from textme_reference import quality, world
from textme_reference.plugin import ASSETS
from textme_sdk import get_encoder, list_encoders, plugin_status, reload_plugins
from textme_sdk.errors import InvalidInputError, TextMEError, UnknownPluginError

# Measured on the shipped weights with 400 held-out items (image 0.835, audio 0.945; gap 0.55 and
# 0.52; assets/*.json has the 1,000-item report), minus a safety margin. CLIP ViT-B/32 has ~0.82.

ZERO_SHOT_MIN = {"image": 0.75, "audio": 0.85}
GAP_MIN = 0.45


@pytest.fixture(scope="module", params=["image", "audio"])
def encoder(request):
    return get_encoder(f"ref-{request.param}")


def test_registered_through_the_entry_point():
    names = {r.name: r for r in list_encoders()}
    assert names["ref-image"].modality == "image" and names["ref-audio"].modality == "audio"
    assert names["ref-image"].metadata["license"] == "Apache-2.0"
    assert names["ref-image"].plugin == names["ref-audio"].plugin == "reference"
    assert names["ref-audio"].metadata["extra"] == "demo"
    row = next(r for r in plugin_status() if r["plugin"] == "reference")
    assert row["source"].startswith("textme-reference ") and row["error"] is None
    assert sorted(row["encoders"]) == ["ref-audio", "ref-image"]


def test_without_the_plugin_the_error_names_the_extra(monkeypatch):
    monkeypatch.setenv("TEXTME_LOAD_PLUGINS", "")  # entry-point plugins off: the bare core
    reload_plugins()
    try:
        with pytest.raises(UnknownPluginError, match=r"pip install 'textme-sdk\[demo\]'"):
            get_encoder("ref-image")
    finally:
        monkeypatch.undo()
        reload_plugins()
    assert get_encoder("ref-image").name == "ref-image"


def test_assets_are_shipped_and_small():
    for modality in world.MODALITIES:
        weights = ASSETS / f"{modality}.safetensors"
        assert weights.is_file() and weights.stat().st_size < 2_000_000
        assert weights.with_suffix(".json").is_file()


def test_encoders_output_unit_norm_rows(encoder):
    items = world.sample_items(encoder.modality, 5, seed=0, split="eval")
    modal = encoder.encode_modal([it.data for it in items])
    text = encoder.encode_text([it.caption for it in items])
    assert modal.shape == text.shape == (5, encoder.embedding_dim)
    assert encoder.embedding_dim == {"image": 64, "audio": 48}[encoder.modality]
    for emb in (modal, text):
        assert emb.dtype == torch.float32
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(5))


def test_config_rebuilds_the_same_encoder(encoder):
    cfg = encoder.config()
    assert cfg["weights"] == "builtin" and len(cfg["sha256"]) == 64
    again = get_encoder(encoder.name, **cfg)
    texts = ["a photo of a dog", "the sound of a bell"]
    torch.testing.assert_close(again.encode_text(texts), encoder.encode_text(texts))
    with pytest.raises(TextMEError, match="SHA-256"):
        get_encoder(encoder.name, weights="builtin", sha256="0" * 64).load()


def test_weights_from_a_folder_path():
    enc = get_encoder("ref-audio", weights=str(ASSETS))
    assert enc.config()["weights"].endswith("audio.safetensors")
    with pytest.raises(FileNotFoundError, match="pretrain"):
        get_encoder("ref-audio", weights="/nonexistent/audio.safetensors")


def test_image_inputs_of_every_kind_agree(tmp_path):
    from PIL import Image

    enc = get_encoder("ref-image")
    item = world.sample_items("image", 1, seed=0)[0]
    pixels = item.data
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    inputs = [pixels, item, Image.fromarray(pixels), torch.from_numpy(pixels).permute(2, 0, 1),
              pixels.astype(np.float32) / 255.0, path]
    emb = enc.encode_modal(inputs)
    torch.testing.assert_close(emb, emb[:1].expand_as(emb), atol=2e-3, rtol=0)
    big = np.asarray(Image.fromarray(pixels).resize((96, 96), Image.NEAREST))
    assert float(enc.encode_modal([big])[0] @ emb[0]) > 0.9
    with pytest.raises(InvalidInputError):
        enc.encode_modal([np.zeros((5, 5, 5))])


def test_audio_inputs_of_every_kind_agree(tmp_path):
    enc = get_encoder("ref-audio")
    item = world.sample_items("audio", 1, seed=0)[0]
    wav = item.data
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        up = np.interp(np.arange(12000) / 2, np.arange(6000), wav)
        f.writeframes((up * 32767).astype(np.int16).tobytes())
    emb = enc.encode_modal([wav, item, torch.from_numpy(wav), (up, 16000), path])
    torch.testing.assert_close(emb[:3], emb[:1].expand(3, -1))
    assert (emb[3:] @ emb[0]).min() > 0.95
    with pytest.raises(InvalidInputError):
        enc.encode_modal([{"not": "a clip"}])
    with pytest.raises(FileNotFoundError):
        enc.encode_modal([tmp_path / "missing.wav"])


def test_shipped_encoders_are_good_and_show_a_modality_gap(encoder):
    scores = quality.evaluate(encoder.encode_text, encoder.encode_modal, encoder.modality, n=400)
    assert scores["zero_shot_top1"] > ZERO_SHOT_MIN[encoder.modality]
    assert scores["zero_shot_top1"] < 0.995  # good, not perfect
    assert scores["text_to_modal_class_R@1"] > 0.7
    # the gap: far-apart centroids, the two modalities split by one direction, and random
    # cross-modal pairs less similar than random pairs within either modality
    assert scores["centroid_distance"] > GAP_MIN
    assert scores["gap_direction_accuracy"] > 0.99
    within = min(scores["text_text_cosine"], scores["modal_modal_cosine"])
    assert scores["unpaired_cross_cosine"] < within - 0.08
    assert scores["paired_cosine"] > scores["unpaired_cross_cosine"] + 0.1
