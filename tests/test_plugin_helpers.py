"""Core helpers for plugin authors: strict checkpoint loading and image-array layouts."""

import numpy as np
import pytest
import torch
from torch import nn

from textme_sdk.checkpoints import load_strict, state_dict_mismatch
from textme_sdk.errors import InvalidInputError, TextMEError
from textme_sdk.images import to_hwc


class LoadError(TextMEError):
    pass


def test_strict_loading_names_every_kind_of_difference_and_loads_nothing():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    good = {k: torch.ones_like(v) for k, v in model.state_dict().items()}
    assert state_dict_mismatch(model.state_dict(), good) is None
    load_strict(model, good, "good.pt")
    assert torch.equal(model[0].weight, torch.ones(4, 3))

    bad = dict(good)
    del bad["1.bias"]
    bad["2.weight"] = torch.zeros(1)
    bad["0.weight"] = torch.zeros(4, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(LoadError) as info:
        load_strict(model, bad, "bad.pt", hint="Pick the right size.", error=LoadError)
    msg = str(info.value)
    assert msg.startswith("bad.pt does not match the architecture: ")
    assert "1 missing (e.g. ['1.bias'])" in msg and "1 unexpected (e.g. ['2.weight'])" in msg
    assert "0.weight: checkpoint (4, 5) vs model (4, 3)" in msg and msg.endswith("Pick the right size.")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_assign_fills_a_meta_model():
    with torch.device("meta"):
        model = nn.Linear(2, 2)
    load_strict(model, {"weight": torch.eye(2), "bias": torch.zeros(2)}, "x", assign=True)
    assert model.weight.device.type == "cpu" and torch.equal(model.weight, torch.eye(2))


def test_to_hwc_follows_each_librarys_layout():
    hwc = np.zeros((5, 6, 3), np.uint8)
    assert to_hwc(hwc, "clip").shape == (5, 6, 3)
    assert to_hwc(np.zeros((3, 5, 6)), "clip").shape == (5, 6, 3)
    assert to_hwc(np.zeros((5, 6)), "clip").shape == (5, 6, 1)
    chw = torch.arange(3 * 5 * 6, dtype=torch.float16).reshape(3, 5, 6)
    out = to_hwc(chw, "clip")
    assert out.shape == (5, 6, 3) and out.dtype == np.float32 and out[1, 2, 0] == chw[0, 1, 2]
    ambiguous = torch.zeros(3, 4, 3)  # a tensor is C x H x W first
    assert to_hwc(ambiguous, "clip").shape == (4, 3, 3)


def test_to_hwc_explains_bad_shapes():
    with pytest.raises(InvalidInputError, match="a batch\\? pass a list"):
        to_hwc(np.zeros((2, 5, 6, 3)), "clip")
    with pytest.raises(InvalidInputError, match="cxr_clip expects one radiograph per tensor .* got shape \\(2, 5, 6\\)"):
        to_hwc(torch.zeros(2, 5, 6), "cxr_clip", "radiograph")


def test_to_uint8_scales_unit_floats_and_explains_the_rest():
    from textme_sdk.images import to_uint8

    assert to_uint8(np.array([0.0, 0.5, 1.0])).tolist() == [0, 128, 255]
    assert to_uint8(np.array([True, False])).tolist() == [255, 0]
    with pytest.raises(InvalidInputError, match=r"\[0, 1\], got \[0, 255\]; divide 0..255"):
        to_uint8(np.array([0.0, 255.0]))
    with pytest.raises(InvalidInputError, match="NaN or inf"):
        to_uint8(np.array([np.nan]))
    with pytest.raises(InvalidInputError, match="unsupported image dtype int16"):
        to_uint8(np.array([3], dtype=np.int16))
    halves = to_uint8(np.array([0, 1000], dtype=np.int16), integers=lambda a: (a // 1000 * 7).astype(np.uint8))
    assert halves.tolist() == [0, 7]


class _Tok:
    """A minimal tokenizer: a vocabulary size and a word -> id map (unknown words -> 1)."""

    unk_token_id = 1

    def __init__(self, size, known=()):
        self.size, self.known = size, {w: i + 2 for i, w in enumerate(known)}

    def __len__(self):
        return self.size

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.known.get(w, 1) for w in text.split()]}


def test_check_tokenizer_refuses_stubs_and_oversized_vocabularies():
    from textme_sdk.encoders import check_tokenizer

    probe = "a dog barks"
    check_tokenizer(_Tok(100, ["dog"]), 100, "'bert'", probe, LoadError)
    with pytest.raises(LoadError, match="the tokenizer 'bert' has only 5 tokens"):
        check_tokenizer(_Tok(5), 100, "'bert'", probe, LoadError)
    with pytest.raises(LoadError, match="embeds only 50; they do not belong together \\(hint\\)"):
        check_tokenizer(_Tok(100, ["dog"]), 50, "'bert'", probe, LoadError, mismatch_hint=" (hint)")
    with pytest.raises(LoadError, match="unknown tokens only: it is not SciBERT's"):
        check_tokenizer(_Tok(100), 100, "'bert'", probe, LoadError, expected="SciBERT's tokenizer")


# -- ImageReader and the random-weights warning, directly ----------------------------------
def test_image_reader_reads_every_input_kind_as_rgb(tmp_path):
    import numpy as np
    from PIL import Image

    import textme_sdk as tm
    from textme_sdk.images import ImageReader

    read = ImageReader("toy")
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6)
    Image.fromarray(grey).save(tmp_path / "g.png")
    from_file = read(str(tmp_path / "g.png"))
    assert from_file.mode == "RGB" and from_file.size == (6, 4)
    assert np.array_equal(np.asarray(from_file)[..., 0], grey)
    assert read(np.stack([grey] * 3, axis=-1)).size == (6, 4)
    assert read(torch.zeros(3, 4, 6)).size == (6, 4)  # C x H x W tensors
    rgba = Image.fromarray(np.zeros((4, 6, 4), np.uint8), "RGBA")
    assert read(rgba).mode == "RGB"
    wide = Image.fromarray(np.full((2, 2), 65535, np.uint16).astype(np.int32), "I")
    assert np.asarray(read(wide)).max() == 255  # 16-bit scaled, not saturated by PIL

    with pytest.raises(tm.MissingInputFileError, match="image file not found"):
        read(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(tm.InvalidInputError, match="PNG or JPEG"):
        read(str(tmp_path / "bad.png"))
    with pytest.raises(tm.InvalidInputError):
        read(np.zeros((2, 8, 6, 3), np.uint8))  # a batch, not one image
    with pytest.raises(tm.InvalidInputError):
        read(3.5)


def test_image_reader_is_adapted_by_subclassing():
    import numpy as np

    import textme_sdk as tm
    from textme_sdk.images import ImageReader

    class Radiographs(ImageReader):
        thing = "radiograph"

        def other(self, item):
            if isinstance(item, bytes):
                return self(np.frombuffer(item, np.uint8).reshape(2, 2))
            return super().other(item)

    read = Radiographs("xray")
    assert read(bytes([0, 64, 128, 255])).size == (2, 2)
    with pytest.raises(tm.InvalidInputError):
        read(object())


def test_random_weights_are_announced(caplog):
    from textme_sdk.checkpoints import RANDOM_WEIGHTS, warn_random_weights

    with caplog.at_level("WARNING"):
        warn_random_weights("toy", "toy-base")
    assert "toy: toy-base uses RANDOM weights (random_init=True)" in caplog.text
    assert RANDOM_WEIGHTS == "random weights"
