"""Offline tests of the ``clip`` plugin: a tiny open_clip ViT with random weights, real image
files generated here, training end to end with the real MiniLM anchor (tiny model saved as an
open_clip ``local-dir:`` folder, so a bundle rebuilds it), and the key layout of the full-size
default (ViT-H-14) built on the meta device."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image
from textme_clip import CLIPEncoder, CLIPLoadError, parse_model_spec
from textme_clip.encoder import DEFAULT_MODEL, build_open_clip

import textme_sdk as tm
from textme_sdk.errors import (
    EmptyInputError,
    EncoderLoadError,
    InvalidInputError,
    MissingInputFileError,
)
from textme_sdk.testing import check_encoder, check_registration

TINY = "textme-test-tiny-vit"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    # vocab_size must stay 49408: the default open_clip tokenizer emits ids up to 49407.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory) -> str:
    import open_clip

    cfg_dir = tmp_path_factory.mktemp("open_clip_cfg")
    (cfg_dir / f"{TINY}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(cfg_dir)
    return TINY


@pytest.fixture(scope="module")
def tiny(tiny_arch) -> CLIPEncoder:
    torch.manual_seed(0)
    return CLIPEncoder(tiny_arch, random_init=True, device="cpu").load()


def test_random_weights_are_announced(tiny_arch, caplog):
    enc = CLIPEncoder(tiny_arch, random_init=True, device="cpu")
    assert enc.license == "random weights"
    with caplog.at_level("WARNING", logger="textme_sdk.checkpoints"):
        enc.load()
    assert f"clip: {tiny_arch} uses RANDOM weights (random_init=True)" in caplog.text


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def tiny_dir(tiny, tmp_path_factory):
    """The tiny model as a self-contained open_clip folder (``local-dir:``): config + weights,
    so that it can be rebuilt from ``encoder.config()`` alone (what a bundle stores)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_clip_dir")
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_CFG, "preprocess_cfg": dict(tiny._model.visual.preprocess_cfg),
    }))
    state = {k: v.detach().contiguous() for k, v in tiny._model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220),
           "yellow": (230, 220, 40), "white": (245, 245, 245), "black": (10, 10, 10)}
SHAPES = ("square", "stripe", "frame", "dot")


def draw(colour: str, shape: str, size: tuple[int, int], seed: int) -> Image.Image:
    """A small synthetic picture: a coloured shape on a noisy grey background."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = rng.integers(90, 160, (h, w, 3), dtype=np.uint8)
    rgb = np.array(COLOURS[colour], np.uint8)
    if shape == "square":
        img[h // 4:3 * h // 4, w // 4:3 * w // 4] = rgb
    elif shape == "stripe":
        img[h // 2 - 4:h // 2 + 4] = rgb
    elif shape == "frame":
        img[:4], img[-4:], img[:, :4], img[:, -4:] = rgb, rgb, rgb, rgb
    else:
        yy, xx = np.ogrid[:h, :w]
        img[(yy - h // 2) ** 2 + (xx - w // 2) ** 2 < (min(h, w) // 4) ** 2] = rgb
    return Image.fromarray(img)


def write_images(folder, n: int) -> list:
    """``n`` PNG/JPEG files of varying sizes."""
    paths = []
    names = list(COLOURS)
    for i in range(n):
        colour, shape = names[i % len(names)], SHAPES[(i // len(names)) % len(SHAPES)]
        img = draw(colour, shape, (40 + 8 * (i % 4), 48 + 8 * (i % 3)), seed=i)
        path = folder / f"img{i:02d}.{'png' if i % 2 else 'jpg'}"
        img.save(path, **({} if i % 2 else {"quality": 90}))
        paths.append(path)
    return paths


def captions(n: int) -> list[str]:
    places = ("on a grey wall", "in a photo", "on a noisy background", "in the middle")
    out = [f"a {c} {s} {p}" for p in places for s in SHAPES for c in COLOURS]
    return out[:n]


# -- model names ---------------------------------------------------------------------------
def test_model_spec_forms():
    assert parse_model_spec(DEFAULT_MODEL).pretrained == "laion2b_s32b_b79k"
    assert parse_model_spec("ViT-B-32", "openai").display == "ViT-B-32:openai"
    assert parse_model_spec("ViT-B-32:/ckpt/x.pt").pretrained == "/ckpt/x.pt"
    assert parse_model_spec("hf-hub:org/repo").pretrained is None
    with pytest.raises(InvalidInputError, match="brings its own weights"):
        parse_model_spec("hf-hub:org/repo", "openai")
    with pytest.raises(InvalidInputError, match="already names"):
        parse_model_spec("ViT-B-32:openai", "laion2b_s34b_b79k")
    with pytest.raises(InvalidInputError, match="no weights named"):
        parse_model_spec("ViT-B-32")


def test_construction_is_cheap_and_config_round_trips():
    enc = CLIPEncoder()
    assert not enc.is_loaded and enc.embedding_dim == 1024 and enc.license.startswith("MIT")
    cfg = enc.config()
    assert cfg == {"model": "ViT-H-14", "pretrained": "laion2b_s32b_b79k", "random_init": False,
                   "embedding_dim": 1024}
    assert CLIPEncoder(**cfg).config() == cfg
    assert "cache_dir" not in CLIPEncoder(cache_dir="/tmp/hf").config()
    json.dumps(cfg)


def test_registered_without_importing_open_clip():
    info = check_registration("clip", heavy=("open_clip",))
    assert info["modality"] == "image" and info["class"] == "CLIPEncoder"


# -- encoding ------------------------------------------------------------------------------
def test_shapes_normalisation_and_determinism(tiny, picture):
    text = tiny.encode_text(["a photo of a dog", "a red square", "x"])
    assert text.shape == (3, 32) and text.dtype == torch.float32
    assert torch.allclose(text.norm(dim=1), torch.ones(3), atol=1e-5)
    images = tiny.encode_modal([picture, picture.rotate(90), picture.convert("L")])
    assert images.shape == (3, 32)
    assert torch.allclose(images.norm(dim=1), torch.ones(3), atol=1e-5)
    # alone vs inside a batch: BLAS picks kernels by shape, so equal up to rounding only
    torch.testing.assert_close(tiny.encode_text(["a photo of a dog"])[0], text[0],
                               atol=1e-6, rtol=1e-5)
    one_by_one = tiny.encode_modal([picture, picture.rotate(90)], batch_size=1)
    assert torch.allclose(one_by_one, images[:2], atol=1e-5)


def test_every_input_kind_matches_the_pil_path(tiny, picture, tmp_path):
    png = tmp_path / "picture.png"
    picture.save(png)
    arr = np.array(picture)
    reference = tiny.encode_modal([picture])[0]
    inputs = [
        str(png), png, arr, arr.astype(np.float32) / 255.0, np.moveaxis(arr, -1, 0),
        torch.from_numpy(arr).permute(2, 0, 1).contiguous(),
        torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0,
    ]
    out = tiny.encode_modal(inputs)
    for i, row in enumerate(out):
        assert torch.allclose(row, reference, atol=1e-5), f"input kind {i} differs"


def test_jpeg_greyscale_and_rgba_files(tiny, picture, tmp_path):
    jpg, grey, rgba = tmp_path / "a.jpg", tmp_path / "b.png", tmp_path / "c.png"
    picture.save(jpg, quality=90)
    picture.convert("L").save(grey)
    picture.convert("RGBA").save(rgba)
    out = tiny.encode_modal([jpg, grey, rgba])
    assert out.shape == (3, 32) and torch.isfinite(out).all()
    assert torch.allclose(out[2], tiny.encode_modal([picture])[0], atol=1e-5)


def test_preprocessing_is_open_clips_own_transform(tiny, tiny_arch, picture):
    import open_clip

    _, _, reference = open_clip.create_model_and_transforms(tiny_arch, device="cpu")
    assert torch.equal(tiny.preprocess([picture])[0], reference(picture))


def test_bad_inputs_raise_clear_errors(tiny, tmp_path):
    cases = [
        ([tmp_path / "missing.png"], "not found.*check the path"),
        ([np.zeros((2, 8, 8, 3), np.uint8)], "a batch"),
        ([np.full((8, 8, 3), 7.0, np.float32)], r"\[0, 1\]"),
        ([object()], "cannot read an image"),
        ([np.zeros((8, 8, 3), np.int64)], "unsupported image dtype"),
    ]
    for inputs, match in cases:
        with pytest.raises(InvalidInputError, match=match):
            tiny.encode_modal(inputs)
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    with pytest.raises(InvalidInputError, match="could not decode.*corrupt or not an image"):
        tiny.encode_modal([bad])


def test_wrong_types_corrupt_files_and_channel_counts_raise_typed_errors(tiny, picture, tmp_path):
    """Every bad input gets a textme-sdk error that names the problem and the fix."""
    png = tmp_path / "ok.png"
    picture.save(png)
    truncated, garbage, folder = tmp_path / "cut.png", tmp_path / "noise.jpg", tmp_path / "dir"
    truncated.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 600, np.uint8).tobytes())
    folder.mkdir()
    cases = [
        # wrong types: the container, then the items
        ("cat.png", InvalidInputError, "wrap it in a list"),
        (42, InvalidInputError, "expects a list"),
        ([42], InvalidInputError, "cannot read an image from a int.*pass a file path"),
        ([None], InvalidInputError, "cannot read an image from a NoneType"),
        ([png.read_bytes()], InvalidInputError, "cannot read an image from a bytes"),
        ([], EmptyInputError, "no inputs"),
        # files
        ([folder], InvalidInputError, "is a folder, not an image file"),
        ([truncated], InvalidInputError, "could not decode.*corrupt"),
        ([garbage], InvalidInputError, "could not decode.*corrupt"),
        # channel counts and shapes
        ([np.zeros((8, 8, 2), np.uint8)], InvalidInputError, r"1, 3 or 4 channels.*\(8, 8, 2\)"),
        ([np.zeros((8, 8, 5), np.uint8)], InvalidInputError, r"1, 3 or 4 channels.*convert"),
        ([torch.zeros(2, 8, 8)], InvalidInputError, r"C x H x W.*\(2, 8, 8\)"),
        ([torch.zeros(5, 8, 8)], InvalidInputError, r"1, 3 or 4 channels.*\(5, 8, 8\)"),
        ([np.zeros(8, np.uint8)], InvalidInputError, r"got shape \(8,\)"),
        ([np.zeros((0, 8, 3), np.uint8)], InvalidInputError, "zero size"),
        ([np.full((8, 8, 3), np.nan, np.float32)], InvalidInputError, "NaN.*nan_to_num"),
        ([np.zeros((8, 8, 3), np.float32)[None].repeat(2, 0)], InvalidInputError, "pass a list"),
    ]
    for inputs, error, match in cases:
        with pytest.raises(error, match=match):
            tiny.encode_modal(inputs)
    with pytest.raises(InvalidInputError, match="zero size"):
        tiny.encode_modal([Image.new("RGB", (0, 4))])
    assert tiny.encode_modal([png]).shape == (1, 32)  # the good file next to them still works


def test_16_bit_images_are_scaled_not_saturated(tiny, tmp_path):
    """PIL's convert("RGB") turns a 16-bit greyscale PNG almost white; the plugin rescales."""
    ramp = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)
    path = tmp_path / "sixteen.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I;16")
    eight_bit = np.rint(ramp / 65535.0 * 255).astype(np.uint8)
    got = tiny.encode_modal([path, Image.fromarray(ramp).convert("I")])
    expected = tiny.encode_modal([eight_bit])
    assert torch.allclose(got, expected.expand(2, -1), atol=1e-5)


# -- end to end ----------------------------------------------------------------------------
def test_trains_end_to_end_and_reloads_from_the_bundle(tiny_dir, tmp_path):
    """offsets -> training -> embed files -> save -> from_pretrained, via textme_sdk.testing."""
    enc = tm.get_encoder("clip", model=f"local-dir:{tiny_dir}", device="cpu")
    assert enc.embedding_dim == 32 and not enc.is_loaded  # read from open_clip_config.json
    # unpaired: the captions do not describe these files one to one
    result = check_encoder(enc, captions(48), write_images(tmp_path, 32), tmp_path, atol=1e-6,
                           bad_inputs=[(tmp_path / "gone.png", MissingInputFileError)])
    stored = json.loads((result.bundle / "config.json").read_text())["modalities"]["image"]
    assert stored["encoder"] == {"model": f"local-dir:{tiny_dir}", "random_init": False,
                                 "embedding_dim": 32}
    # a config stored by earlier versions (with "pretrained": None) rebuilds the same encoder
    old = {"model": f"local-dir:{tiny_dir}", "pretrained": None, "embedding_dim": 32}
    assert tm.get_encoder("clip", **old).config() == stored["encoder"]


def test_local_paths_are_stored_absolute(tiny_dir, tiny_arch, tmp_path, monkeypatch):
    """A bundle must rebuild the encoder from any working directory."""
    monkeypatch.chdir(tiny_dir.parent)
    enc = CLIPEncoder(f"local-dir:{tiny_dir.name}")
    assert enc.config()["model"] == f"local-dir:{tiny_dir}"
    (tmp_path / "w.safetensors").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert CLIPEncoder(tiny_arch, pretrained="w.safetensors").config()["pretrained"] == str(
        tmp_path / "w.safetensors")
    assert CLIPEncoder("ViT-B-32:openai").config()["pretrained"] == "openai"  # tags stay tags


# -- weights -------------------------------------------------------------------------------
def test_local_checkpoint_loads_strictly(tiny, tiny_arch, picture, tmp_path):
    ckpt = tmp_path / "tiny.pt"
    # Published open_clip training checkpoints wrap the weights as {"state_dict": {"module.*"}}.
    state = {f"module.{k}": v for k, v in tiny._model.state_dict().items()}
    torch.save({"epoch": 1, "state_dict": state}, ckpt)
    loaded = CLIPEncoder(tiny_arch, pretrained=str(ckpt), device="cpu")
    assert torch.allclose(loaded.encode_modal([picture]), tiny.encode_modal([picture]), atol=1e-6)
    assert torch.allclose(loaded.encode_text(["a dog"]), tiny.encode_text(["a dog"]), atol=1e-6)

    del state["module.visual.proj"]
    torch.save({"state_dict": state}, ckpt)
    with pytest.raises(CLIPLoadError, match="visual.proj"):
        CLIPEncoder(tiny_arch, pretrained=str(ckpt)).load()


def test_unavailable_weights_fail_fast_offline(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CLIPLoadError, match="Failed to download weights.*offline"):
        CLIPEncoder("ViT-B-32:laion2b_s34b_b79k", cache_dir=str(tmp_path)).load()


def test_requested_dimension_is_checked(tiny_arch):
    with pytest.raises(EncoderLoadError, match="produces 32-d embeddings, but embedding_dim=64"):
        CLIPEncoder(tiny_arch, random_init=True, embedding_dim=64).load()


def test_errors_subclass_the_core_load_error():
    assert issubclass(CLIPLoadError, EncoderLoadError)


def test_hugging_face_tokenizers_get_the_core_guard(tiny):
    """open_clip wraps the tokenizers of Hugging Face text towers; an offline stub is refused."""
    from types import SimpleNamespace

    from transformers import BertTokenizerFast

    from textme_clip.encoder import _check_tokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "dog"]
    spec = parse_model_spec("hf-hub:org/tiny")
    real = SimpleNamespace(tokenizer=BertTokenizerFast(vocab={w: i for i, w in enumerate(
        words + [f"w{i}" for i in range(20)])}))
    _check_tokenizer(real, tiny._model, spec)  # fits the 49408-row table: accepted
    stub = SimpleNamespace(tokenizer=BertTokenizerFast(vocab={w: i for i, w in enumerate(
        words[:5] + [f"w{i}" for i in range(20)])}))
    with pytest.raises(CLIPLoadError, match="of 'hf-hub:org/tiny' maps ordinary English to "
                                            "unknown tokens only") as info:
        _check_tokenizer(stub, tiny._model, spec)
    assert isinstance(info.value, EncoderLoadError)
    _check_tokenizer(SimpleNamespace(), tiny._model, spec)  # open_clip's own BPE: no HF guard


# -- the full-size default -----------------------------------------------------------------
def vit_h14_laion2b_layout() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``open_clip_pytorch_model.bin`` of laion/CLIP-ViT-H-14-laion2B-s32B-b79K.

    Derived by hand from open_clip's ``CLIP`` / ``VisionTransformer`` / ``TextTransformer``
    with ViT-H-14's numbers: vision width 1280 x 32 layers, patch 14 at 224 px (16 x 16 + 1
    tokens); text width 1024 x 24 layers, context 77, vocab 49408; joint dim 1024.
    """
    vis_w, vis_layers, txt_w, txt_layers, dim = 1280, 32, 1024, 24, 1024
    layout: dict[str, tuple[int, ...]] = {
        "positional_embedding": (77, txt_w),
        "text_projection": (txt_w, dim),
        "logit_scale": (),
        "token_embedding.weight": (49408, txt_w),
        "ln_final.weight": (txt_w,),
        "ln_final.bias": (txt_w,),
        "visual.class_embedding": (vis_w,),
        "visual.positional_embedding": ((224 // 14) ** 2 + 1, vis_w),
        "visual.proj": (vis_w, dim),
        "visual.conv1.weight": (vis_w, 3, 14, 14),
    }
    for norm in ("ln_pre", "ln_post"):
        layout[f"visual.{norm}.weight"] = layout[f"visual.{norm}.bias"] = (vis_w,)
    for prefix, width, layers in (("visual.transformer", vis_w, vis_layers),
                                  ("transformer", txt_w, txt_layers)):
        for i in range(layers):
            block = f"{prefix}.resblocks.{i}."
            for norm in ("ln_1", "ln_2"):
                layout[block + norm + ".weight"] = layout[block + norm + ".bias"] = (width,)
            layout[block + "attn.in_proj_weight"] = (3 * width, width)
            layout[block + "attn.in_proj_bias"] = (3 * width,)
            layout[block + "attn.out_proj.weight"] = (width, width)
            layout[block + "attn.out_proj.bias"] = (width,)
            layout[block + "mlp.c_fc.weight"] = (4 * width, width)
            layout[block + "mlp.c_fc.bias"] = (4 * width,)
            layout[block + "mlp.c_proj.weight"] = (width, 4 * width)
            layout[block + "mlp.c_proj.bias"] = (width,)
    return layout


@pytest.fixture(scope="module")
def default_on_meta():
    return build_open_clip(parse_model_spec(DEFAULT_MODEL), device="meta", load_weights=False)


def test_default_architecture_matches_published_checkpoint(default_on_meta):
    model, _, _ = default_on_meta
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = vit_h14_laion2b_layout()
    assert sorted(set(got) ^ set(expected)) == []
    assert {k for k in got if got[k] != expected[k]} == set()
    assert model.text_projection.shape[-1] == CLIPEncoder().embedding_dim == 1024


def test_default_preprocessing_is_laion_vit_h14s(default_on_meta, picture):
    """Resize the shorter side to 224 (bicubic), centre-crop 224, OpenAI mean/std."""
    _, transform, tokenizer = default_on_meta
    w, h = picture.size  # torchvision: short side -> 224, long side truncated; crop rounded
    size = (int(224 * w / h), 224) if w >= h else (224, int(224 * h / w))
    resized = picture.resize(size, Image.BICUBIC)
    left, top = round((size[0] - 224) / 2), round((size[1] - 224) / 2)
    crop = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    expected = torch.from_numpy(((crop - mean) / std).transpose(2, 0, 1))
    got = transform(picture)
    assert got.shape == (3, 224, 224)
    assert torch.allclose(got, expected, atol=1e-5)
    assert tokenizer(["a dog"]).shape == (1, 77)
