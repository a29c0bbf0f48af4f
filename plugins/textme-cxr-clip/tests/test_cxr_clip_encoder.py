"""The ``cxr_clip`` encoder: registration, preprocessing (PNG 8/16-bit, JPEG, DICOM, arrays) as
upstream's eval transform, tokenization, typed errors, and training end to end through TextME
with the real MiniLM anchor on tiny random CXR-CLIP models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from cxr_testlib import (
    chest,
    random_state,
    reports,
    tiny_r50,
    tiny_swin,
    write_dicom,
    write_radiographs,
)
from PIL import Image
from textme_cxr_clip import (
    CheckpointError,
    CheckpointMismatchError,
    CXRClipEncoder,
    CXRClipLoadError,
    TokenizerError,
)
from textme_cxr_clip.checkpoint import save_converted
from textme_cxr_clip.images import window

import textme_sdk as tm
from textme_sdk import errors as core_errors
from textme_sdk.errors import (
    EmptyInputError,
    EncoderLoadError,
    InvalidInputError,
    MissingInputFileError,
)
from textme_sdk.testing import check_encoder


@pytest.fixture(scope="module")
def swin(tokenizer_dir):
    arch = tiny_swin(tokenizer_dir)
    return CXRClipEncoder(random_init=True, architecture=arch.to_dict(), device="cpu").load()


@pytest.fixture(scope="module")
def r50(tokenizer_dir):
    arch = tiny_r50(tokenizer_dir)
    return CXRClipEncoder("r50", random_init=True, architecture=arch, device="cpu").load()


def grey8(seed: int = 0, size: tuple[int, int] = (80, 72)) -> np.ndarray:
    return np.rint(chest(seed, size) * 255).astype(np.uint8)


# -- registration and configuration ------------------------------------------------------------
def test_registered_lazily_with_its_licence():
    code = (
        "import sys, textme_sdk\n"
        "reg = {r.name: r for r in textme_sdk.list_encoders()}['cxr_clip']\n"
        "assert reg.modality == 'xray' and reg.metadata['extra'] == 'xray', reg\n"
        "assert 'BY-NC' in reg.metadata['license'], reg.metadata\n"
        "enc = textme_sdk.get_encoder('cxr_clip')\n"
        "assert enc.embedding_dim == 512 and not enc.is_loaded\n"
        "heavy = [m for m in ('transformers', 'torchvision', 'pydicom') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(json.dumps(enc.config()))\n"
    )
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"model": "swint_mcc", "random_init": False,
                                      "embedding_dim": 512}


def test_configs_round_trip_as_json(swin, tokenizer_dir, tmp_path, monkeypatch):
    cfg = swin.config()
    assert cfg["random_init"] is True and cfg["embedding_dim"] == 32
    rebuilt = CXRClipEncoder(**json.loads(json.dumps(cfg)), device="cpu")
    assert rebuilt.config() == cfg and rebuilt.architecture == swin.architecture
    # random_init is seeded: the rebuilt encoder gives the same embeddings
    torch.testing.assert_close(rebuilt.encode_text(["mild edema"]),
                               swin.encode_text(["mild edema"]))

    weights = save_converted(random_state(swin.architecture), swin.architecture,
                             tmp_path / "tiny.safetensors")
    monkeypatch.chdir(tmp_path)
    enc = CXRClipEncoder(checkpoint="tiny.safetensors", tokenizer=os.path.relpath(tokenizer_dir))
    assert enc.config() == {"checkpoint": str(weights), "tokenizer": str(tokenizer_dir),
                            "random_init": False,
                            "embedding_dim": 32}  # read from the file's header, not loaded
    assert not enc.is_loaded
    with pytest.raises(InvalidInputError, match="random_init=True"):
        CXRClipEncoder(architecture=swin.architecture)
    with pytest.raises(InvalidInputError, match="not both"):
        CXRClipEncoder(checkpoint=weights, random_init=True)


# -- encoding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["swin", "r50"])
def test_shapes_normalisation_and_determinism(name, request):
    enc = request.getfixturevalue(name)
    texts = ["No acute cardiopulmonary process.", "small left pleural effusion", ""]
    t = enc.encode_text(texts)
    assert t.shape == (3, 32) and t.dtype == torch.float32
    torch.testing.assert_close(t.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(enc.encode_text(texts[:1])[0], t[0])  # padding does not matter
    images = [grey8(0), grey8(1, (64, 96)), chest(2)]
    x = enc.encode_modal(images)
    assert x.shape == (3, 32)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(enc.encode_modal(images, batch_size=1), x, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(x[0], x[1], atol=1e-3)


def test_tokenization_is_upstreams(swin):
    tokens = swin.tokenize(["No ACUTE process", "mild edema " * 400])
    assert set(tokens) == {"input_ids", "token_type_ids", "attention_mask"}
    assert tokens["input_ids"].shape == (2, 256)  # truncated at text_max_length, padded longest
    assert tokens["input_ids"][1, -1].item() == 3  # [SEP] kept at the end after truncation
    short = tokens["attention_mask"][0].sum().item()
    assert tokens["input_ids"][0, short - 1].item() == 3  # [SEP], then [PAD]s
    assert tokens["input_ids"][0, short:].eq(0).all()
    tok = swin._tokenizer
    assert tok.convert_ids_to_tokens(tokens["input_ids"][0, 1:4]) == ["no", "acute", "process"]


# -- preprocessing -----------------------------------------------------------------------------
def _reference(img: Image.Image, size: int, mean, std) -> torch.Tensor:
    """torchvision Resize(size) + CenterCrop(size) + ToTensor + Normalize, written out."""
    w, h = img.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    img = img.convert("RGB").resize(new, Image.BILINEAR)
    left, top = round((new[0] - size) / 2), round((new[1] - size) / 2)
    arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def test_preprocessing_is_upstreams_eval_transform(swin, r50):
    img = Image.fromarray(grey8(3, (90, 70)))
    got = swin.preprocess([img])[0]
    torch.testing.assert_close(got, _reference(img, 64, (0.5,) * 3, (0.5,) * 3))
    assert torch.equal(got[0], got[1]) and torch.equal(got[1], got[2])  # grey -> 3 channels
    ref = _reference(img, 64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    torch.testing.assert_close(r50.preprocess([img])[0], ref)
    assert swin.architecture.mean == (0.5, 0.5, 0.5) and r50.architecture.std[0] == 0.229


def test_every_input_kind_gives_the_same_tensor(swin, tmp_path):
    grey = grey8(4)
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(grey).save(png)
    reference = swin.preprocess([Image.fromarray(grey)])[0]
    same = [png, str(png), grey, grey[:, :, None], np.repeat(grey[:, :, None], 3, -1),
            grey.astype(np.float32) / 255, torch.from_numpy(grey)[None],
            torch.from_numpy(grey).float()[None].repeat(3, 1, 1) / 255,
            Image.fromarray(grey).convert("RGBA")]
    for i, tensor in enumerate(swin.preprocess(same)):
        torch.testing.assert_close(tensor, reference, atol=1e-6, rtol=0, msg=f"input {i}")
    Image.fromarray(grey).save(jpg, quality=95)
    assert (swin.preprocess([jpg])[0] - reference).abs().mean() < 0.05


def test_sixteen_bit_images_are_stretched_not_saturated(swin, tmp_path):
    values = np.rint(chest(5) * 4000 + 50).astype(np.uint16)  # 12-bit data in 16-bit storage
    path = tmp_path / "sixteen.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    stretched = (values - values.min()) / (values.max() - values.min())
    expected = swin.preprocess([np.rint(stretched * 255).astype(np.uint8)])[0]
    got = swin.preprocess([path, values, Image.fromarray(values.astype(np.int32))])
    for tensor in got:
        torch.testing.assert_close(tensor, expected)
    saturated = swin.preprocess([Image.open(path).convert("RGB")])[0]  # what convert() does
    assert saturated.mean() > 0.9 and expected.mean() < 0.5


def test_dicom_modality_lut_windowing_and_photometric(swin, tmp_path):
    stored = np.rint(chest(6) * 3000 + 500).astype(np.uint16)
    modality = stored * 2.0 - 1024  # RescaleSlope 2, RescaleIntercept -1024
    center, width = 2000.0, 3000.0
    shown = window(modality, center, width)
    expected = swin.preprocess([np.rint(shown * 255).astype(np.uint8)])[0]
    inverted = swin.preprocess([np.rint((1 - shown) * 255).astype(np.uint8)])[0]
    plain = swin.preprocess([np.rint((stored - stored.min()) / np.ptp(stored) * 255)
                             .astype(np.uint8)])[0]
    common = {"RescaleSlope": 2, "RescaleIntercept": -1024}
    mono2 = write_dicom(tmp_path / "a.dcm", stored, WindowCenter=center, WindowWidth=width,
                        **common)
    mono1 = write_dicom(tmp_path / "b.dcm", stored, "MONOCHROME1", WindowCenter=center,
                        WindowWidth=width, **common)
    bare = write_dicom(tmp_path / "c.dcm", stored)  # no window: min..max stretch
    no_suffix = tmp_path / "study"
    no_suffix.write_bytes(mono2.read_bytes())  # found by its DICM preamble
    import pydicom
    from pydicom.dataset import Dataset

    lut = Dataset()  # a VOI LUT that inverts the 12-bit range, then stretched
    lut.LUTDescriptor = [4096, 0, 12]
    lut.add_new(0x00283006, "US", [int(v) for v in 4095 - np.arange(4096)])  # LUTData
    with_lut = write_dicom(tmp_path / "d.dcm", stored, VOILUTSequence=[lut], WindowCenter=center,
                           WindowWidth=width)  # the LUT wins over the window
    flipped = (4095 - stored).astype(np.float64)
    lut_expected = swin.preprocess([np.rint((flipped - flipped.min()) / np.ptp(flipped) * 255)
                                    .astype(np.uint8)])[0]

    got = swin.preprocess([mono2, mono1, bare, no_suffix, pydicom.dcmread(mono2), with_lut])
    wanted = (expected, inverted, plain, expected, expected, lut_expected)
    assert len(got) == len(wanted)
    for tensor, want in zip(got, wanted):
        torch.testing.assert_close(tensor, want)
    assert swin.encode_modal([mono2]).shape == (1, 32)


def test_window_functions_follow_the_dicom_standard():
    x = np.array([0.0, 39.5, 40.0, 60.0, 100.0])
    # LINEAR, c = 50, w = 21: 0 up to 39.5, 1 above 59.5, (x - 49.5) / 20 + 0.5 between
    np.testing.assert_allclose(window(x, 50, 21), [0, 0, 0.025, 1, 1])
    np.testing.assert_allclose(window(np.array([50.0]), 50, 20, "LINEAR_EXACT"), [0.5])
    np.testing.assert_allclose(window(np.array([50.0]), 50, 20, "SIGMOID"), [0.5])
    with pytest.raises(InvalidInputError, match="Window Width"):
        window(x, 50, 0)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's warnings on the garbage file
def test_bad_inputs_raise_typed_errors(swin, tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir()
    corrupt_png, corrupt_dcm = tmp_path / "bad.png", tmp_path / "bad.dcm"
    corrupt_png.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    corrupt_dcm.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")  # pydicom is lenient
    whole = write_dicom(tmp_path / "whole.dcm", np.full((32, 32), 100)).read_bytes()
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(whole[: len(whole) - 1000])
    frames = write_dicom(tmp_path / "multi.dcm", np.zeros((2, 8, 8)), frames=2)
    no_pixels = write_dicom(tmp_path / "sr.dcm", np.zeros((8, 8)), pixel_data=False)
    cases = [
        ("cxr.png", InvalidInputError, "wrap it in a list"),
        ([], EmptyInputError, "no inputs"),
        ([tmp_path / "missing.png"], MissingInputFileError, "not found"),
        ([folder], InvalidInputError, "is a folder"),
        ([corrupt_png], InvalidInputError, "could not decode.*corrupt"),
        ([corrupt_dcm], InvalidInputError, "as DICOM|no pixel data"),
        ([truncated], InvalidInputError, "could not decode the pixels.*truncated or corrupt"),
        ([frames], InvalidInputError, "2 frames"),
        ([no_pixels], InvalidInputError, "no pixel data"),
        ([42], InvalidInputError, "cannot read a radiograph from a int"),
        ([np.zeros((2, 8, 8, 1), np.uint8)], InvalidInputError, "a batch"),
        ([np.zeros((8, 8, 2), np.uint8)], InvalidInputError, r"1, 3 or 4 channels.*\(8, 8, 2\)"),
        ([np.zeros((0, 8), np.uint8)], InvalidInputError, "zero size"),
        ([np.full((8, 8), np.nan, np.float32)], InvalidInputError, "NaN"),
        ([np.full((8, 8), 3.0, np.float32)], InvalidInputError, r"\[0, 1\]"),
        ([np.zeros((8, 8), np.complex64)], InvalidInputError, "unsupported image dtype"),
    ]
    for inputs, error, match in cases:
        with pytest.raises(error, match=match):
            swin.encode_modal(inputs)
    with pytest.raises(InvalidInputError, match="expects strings"):
        swin.encode_text([None])


def test_useless_tokenizers_are_refused(tokenizer_dir, tmp_path):
    from transformers import BertTokenizerFast

    stub = tmp_path / "stub"
    BertTokenizerFast(vocab={t: i for i, t in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"x{i}" for i in range(20)])}
    ).save_pretrained(stub)
    arch = tiny_swin(tokenizer_dir).to_dict()
    cases = [(stub, "unknown tokens only"), (tmp_path / "absent", "could not load the tokenizer")]
    for tokenizer, match in cases:
        with pytest.raises(TokenizerError, match=match):
            CXRClipEncoder(random_init=True, architecture=arch, tokenizer=tokenizer).load("cpu")
    small = {**arch, "text": {**arch["text"], "vocab_size": 50}}
    with pytest.raises(TokenizerError, match="embeds only 50"):
        CXRClipEncoder(random_init=True, architecture=small).load("cpu")


# -- end to end --------------------------------------------------------------------------------
def test_trains_end_to_end_and_reloads_from_the_bundle(swin, tmp_path):
    """offsets -> training -> embed files -> save -> from_pretrained, via textme_sdk.testing."""
    weights = save_converted(random_state(swin.architecture, seed=3), swin.architecture,
                             tmp_path / "tiny_swint.safetensors")
    enc = tm.get_encoder("cxr_clip", checkpoint=weights, device="cpu")
    assert enc.embedding_dim == 32 and not enc.is_loaded
    files = write_radiographs(tmp_path, 24)  # PNG, 16-bit PNG, JPEG, DICOM
    result = check_encoder(enc, reports(40), files, tmp_path, atol=1e-6,  # unpaired
                           bad_inputs=[(tmp_path / "gone.dcm", MissingInputFileError)])
    assert result.model.embed(files[3], modality="xray").shape == (384,)  # a single DICOM
    stored = json.loads((result.bundle / "config.json").read_text())["modalities"]["xray"]
    assert stored["encoder"] == {"checkpoint": str(weights), "random_init": False,
                                 "embedding_dim": 32}
    # a config stored by earlier versions (defaults left out) rebuilds the same encoder
    old = {"checkpoint": str(weights), "embedding_dim": 32}
    assert tm.get_encoder("cxr_clip", **old).config() == stored["encoder"]


def test_requested_dimension_is_checked_and_errors_subclass_the_core_ones(tokenizer_dir):
    arch = tiny_swin(tokenizer_dir).to_dict()
    with pytest.raises(EncoderLoadError, match="produces 32-d embeddings, but embedding_dim=64"):
        CXRClipEncoder(random_init=True, architecture=arch, embedding_dim=64).load("cpu")
    assert issubclass(CXRClipLoadError, EncoderLoadError)
    assert issubclass(CheckpointMismatchError, CheckpointError)
    assert issubclass(CheckpointError, CXRClipLoadError)
    assert issubclass(CheckpointError, core_errors.CheckpointError)
    assert issubclass(TokenizerError, CXRClipLoadError)
    assert issubclass(TokenizerError, core_errors.TokenizerError)
