"""Test helpers for the ``cxr_clip`` plugin: tiny architectures, a tiny WordPiece tokenizer,
synthetic radiographs (PNG / 16-bit PNG / DICOM), and a fake ``omegaconf`` package whose
pickles look like those inside the published checkpoints."""

from __future__ import annotations

import dataclasses
import string
import sys
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from textme_cxr_clip.architecture import Architecture, BertSpec, ResNetSpec, SwinSpec

REPORT_WORDS = [
    "no", "acute", "cardiopulmonary", "process", "heart", "size", "is", "normal", "the",
    "lungs", "are", "clear", "there", "a", "small", "left", "right", "pleural", "effusion",
    "pneumonia", "opacity", "in", "lower", "upper", "lobe", "mild", "edema", "cardiomegaly",
    "stable", "pneumothorax", "atelectasis", "consolidation", "with", "without", "of", "and",
]


# -- tokenizer ---------------------------------------------------------------------------------
def tokenizer_vocab() -> list[str]:
    """BERT-style vocabulary: specials, characters, ``##`` continuations, report words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase) + list(string.digits) + list(".,;:-()/")
    pieces = ["##" + c for c in string.ascii_lowercase + string.digits]
    return specials + chars + pieces + sorted(set(REPORT_WORDS))


def write_tokenizer(folder: Path) -> Path:
    """Save a lower-casing ``BertTokenizerFast`` (as AutoTokenizer gives Bio_ClinicalBERT)."""
    from transformers import BertTokenizerFast

    vocab = {w: i for i, w in enumerate(tokenizer_vocab())}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(folder)
    return folder


# -- tiny architectures ------------------------------------------------------------------------
TINY_TEXT = BertSpec(vocab_size=160, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=256, max_position_embeddings=512)
TINY_SWIN_SPEC = SwinSpec(embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=4)
TINY_RESNET_SPEC = ResNetSpec(layers=(1, 1, 1, 1), width_per_group=8)


def tiny_swin(tokenizer: str | Path, **kw: Any) -> Architecture:
    """Swin with 3 stages at 64 px: maps 16, 8, 4 with window 4 (the last stage unshifted)."""
    values: dict[str, Any] = {"image_encoder": "swin", "swin": TINY_SWIN_SPEC, "resnet": None,
                              "text": TINY_TEXT, "proj_dim": 32, "image_size": 64,
                              "tokenizer": str(tokenizer)}
    values.update(kw)
    return Architecture(**values)


def tiny_r50(tokenizer: str | Path, **kw: Any) -> Architecture:
    values: dict[str, Any] = {"image_encoder": "resnet", "swin": None,
                              "resnet": TINY_RESNET_SPEC, "text": TINY_TEXT, "proj_dim": 32,
                              "image_size": 64, "tokenizer": str(tokenizer)}
    values.update(kw)
    return Architecture(**values)


def random_state(arch: Architecture, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of ``arch`` with non-trivial values everywhere (norms and biases too)."""
    from textme_cxr_clip.model import build_model

    model = build_model(arch, "cpu", seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    state = {}
    for k, v in model.state_dict().items():
        if v.is_floating_point() and "running_var" not in k and v.dim() > 0:
            v = v + 0.05 * torch.randn(v.shape, generator=gen)
        state[k] = v.clone()
    return state


# -- radiographs -------------------------------------------------------------------------------
def chest(seed: int, size: tuple[int, int] = (80, 72), finding: str | None = None) -> np.ndarray:
    """A synthetic frontal chest radiograph in [0, 1] (dark lungs, bright mediastinum)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w] / np.array([h, w])[:, None, None]
    img = 0.75 - 0.1 * yy
    for cx in (0.3, 0.7):
        lung = ((xx - cx) / 0.17) ** 2 + ((yy - 0.5) / 0.33) ** 2 < 1
        img = np.where(lung, 0.25, img)
    img = np.where(np.abs(xx - 0.5) < 0.06, 0.85, img)
    if finding == "opacity":
        img = np.where(((xx - 0.3) / 0.08) ** 2 + ((yy - 0.65) / 0.08) ** 2 < 1, 0.7, img)
    elif finding == "effusion":
        img = np.where((yy > 0.72) & (np.abs(xx - 0.7) < 0.16), 0.65, img)
    elif finding == "cardiomegaly":
        img = np.where(((xx - 0.52) / 0.2) ** 2 + ((yy - 0.62) / 0.16) ** 2 < 1, 0.8, img)
    return np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2",
                bits_stored: int = 12, frames: int = 1, pixel_data: bool = True,
                **elements: Any) -> Path:
    """An uncompressed DX DICOM file (Explicit VR Little Endian) written with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for key, value in elements.items():
        setattr(ds, key, value)
    if pixel_data:
        ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_radiographs(folder: Path, n: int) -> list[Path]:
    """``n`` files cycling through 8-bit PNG, 16-bit PNG, JPEG and DICOM."""
    findings = (None, "opacity", "effusion", "cardiomegaly")
    paths = []
    for i in range(n):
        img = chest(i, (72 + 8 * (i % 3), 64 + 8 * (i % 2)), findings[i % 4])
        kind = i % 4
        if kind == 0:
            path = folder / f"cxr{i:02d}.png"
            Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path)
        elif kind == 1:
            path = folder / f"cxr{i:02d}_16bit.png"
            Image.fromarray(np.rint(img * 4095).astype(np.uint16)).save(path)
        elif kind == 2:
            path = folder / f"cxr{i:02d}.jpg"
            Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path, quality=92)
        else:
            path = write_dicom(folder / f"cxr{i:02d}.dcm", np.rint(img * 4095),
                               WindowCenter=2048, WindowWidth=4096)
        paths.append(path)
    return paths


def reports(n: int) -> list[str]:
    """Short report sentences (unpaired with the images)."""
    out = []
    for side in ("left", "right"):
        for lobe in ("lower", "upper"):
            for finding in ("opacity", "consolidation", "atelectasis", "pleural effusion"):
                out.append(f"{finding} in the {side} {lobe} lobe")
    out += ["no acute cardiopulmonary process", "heart size is normal", "the lungs are clear",
            "mild cardiomegaly", "stable small pleural effusion", "no pneumothorax",
            "mild edema", "pneumonia in the right lower lobe"]
    return (out * (n // len(out) + 1))[:n]


# -- a fake omegaconf, pickled the way omegaconf 2.3 pickles -----------------------------------
class FakeOmegaConf:
    """Classes named ``omegaconf.*`` whose pickles mirror omegaconf 2.3's (``__getstate__``
    copies ``__dict__`` minus ``_flags_cache``; metadata are dataclasses holding ``typing.Any``,
    builtin types and a ``defaultdict(dict)``). ``__setstate__`` records every call: a safe
    loader must never run it."""

    def __init__(self) -> None:
        self.setstate_calls: list[str] = []
        calls = self.setstate_calls

        @dataclasses.dataclass
        class Metadata:
            ref_type: Any
            object_type: Any
            optional: bool
            key: Any
            flags: Any = None
            flags_root: bool = False
            resolver_cache: Any = dataclasses.field(default_factory=lambda: defaultdict(dict))

            def __setstate__(self, state: Any) -> None:
                calls.append("Metadata")
                self.__dict__.update(state)

        @dataclasses.dataclass
        class ContainerMetadata(Metadata):
            key_type: Any = None
            element_type: Any = None

        class Node:
            def __init__(self, parent: Any, metadata: Any) -> None:
                self.__dict__.update(_metadata=metadata, _parent=parent, _flags_cache=None)

            def __getstate__(self) -> dict:
                state = dict(self.__dict__)
                del state["_flags_cache"]
                return state

            def __setstate__(self, state: dict) -> None:
                calls.append(type(self).__name__)
                self.__dict__.update(state)

        class AnyNode(Node):
            def __init__(self, value: Any, parent: Any = None, key: Any = None) -> None:
                super().__init__(parent, Metadata(Any, None, True, key))
                self.__dict__["_val"] = value

        class DictConfig(Node):
            def __init__(self, content: dict, parent: Any = None, key: Any = None) -> None:
                super().__init__(parent, ContainerMetadata(Any, dict, True, key, key_type=Any,
                                                           element_type=Any))
                self.__dict__["_content"] = {
                    k: _wrap(v, self, k) for k, v in content.items()}

        class ListConfig(Node):
            def __init__(self, content: list, parent: Any = None, key: Any = None) -> None:
                super().__init__(parent, ContainerMetadata(Any, list, True, key, key_type=int,
                                                           element_type=Any))
                self.__dict__["_content"] = [_wrap(v, self, i) for i, v in enumerate(content)]

        def _wrap(value: Any, parent: Any, key: Any) -> Any:
            if isinstance(value, dict):
                return DictConfig(value, parent, key)
            if isinstance(value, list):
                return ListConfig(value, parent, key)
            return AnyNode(value, parent, key)

        self.modules = {
            "omegaconf": types.ModuleType("omegaconf"),
            "omegaconf.base": types.ModuleType("omegaconf.base"),
            "omegaconf.nodes": types.ModuleType("omegaconf.nodes"),
            "omegaconf.dictconfig": types.ModuleType("omegaconf.dictconfig"),
            "omegaconf.listconfig": types.ModuleType("omegaconf.listconfig"),
        }
        placed = {"omegaconf.base": (Metadata, ContainerMetadata, Node),
                  "omegaconf.nodes": (AnyNode,), "omegaconf.dictconfig": (DictConfig,),
                  "omegaconf.listconfig": (ListConfig,)}
        for module, classes in placed.items():
            for cls in classes:
                cls.__module__, cls.__qualname__ = module, cls.__name__
                setattr(self.modules[module], cls.__name__, cls)
        self.DictConfig, self.ListConfig = DictConfig, ListConfig

    def install(self, monkeypatch: Any) -> None:
        for name, module in self.modules.items():
            monkeypatch.setitem(sys.modules, name, module)


def hydra_config(fake: FakeOmegaConf, arch: Architecture) -> dict[str, Any]:
    """A config as kakaobrain/cxr-clip's trainer saves it: ``convert_dictconfig_to_dict`` of the
    Hydra config, i.e. plain dicts with ``ListConfig`` leaves still linked to the OmegaConf tree."""
    image = ({"source": "torchvision", "name": "resnet", "pretrained": True}
             if arch.image_encoder == "resnet" else
             {"source": "huggingface", "name": "microsoft/swin-tiny-patch4-window7-224",
              "pretrained": True, "model_type": "swin"})
    tree = fake.DictConfig({
        "base": {"image_size": arch.image_size, "text_max_length": arch.text_max_length},
        "transform": {"train": {"RandomResizedCrop": {"size": arch.image_size,
                                                      "scale": [0.8, 1.1]}}},
    })
    scale = tree._content["transform"]._content["train"]._content["RandomResizedCrop"]._content[
        "scale"]
    assert isinstance(scale, fake.ListConfig)
    return {
        "base": {"seed": 1234, "amp": True, "image_size": arch.image_size,
                 "text_max_length": arch.text_max_length, "loss_best": "contrastive"},
        "tokenizer": {"source": "huggingface", "pretrained_model_name_or_path": arch.tokenizer,
                      "cache_dir": "huggingface/tokenizers"},
        "model": {"name": "clip_custom", "temperature": 0.07, "image_encoder": image,
                  "text_encoder": {"source": "huggingface", "name": "tiny-clinical-bert",
                                   "pretrained": True, "pooling": arch.pooling},
                  "projection_head": {"name": arch.projection, "dropout": 0.1,
                                      "proj_dim": arch.proj_dim}},
        "transform": {"train": {"RandomResizedCrop": {"size": arch.image_size, "scale": scale}},
                      "test": {"Resize": {"size": arch.image_size},
                               "CenterCrop": {"size": arch.image_size}}},
        "optimizer": {"name": "adamw", "config": {"lr": 5e-5, "weight_decay": 1e-4}},
    }


def upstream_checkpoint(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict:
    """The dict kakaobrain/cxr-clip's trainer passes to ``torch.save``."""
    first = next(iter(state.values()))
    return {
        "model": state,
        "optimizer": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(first),
                                    "exp_avg_sq": torch.zeros_like(first)}},
                      "param_groups": [{"lr": 5e-5, "betas": (0.9, 0.999), "eps": 1e-8,
                                        "weight_decay": 1e-4, "amsgrad": False, "foreach": None,
                                        "maximize": False, "params": [0]}]},
        "scheduler": {"tsteps": 100, "wsteps": 10, "base_lrs": [5e-5], "last_epoch": 3,
                      "_step_count": 4, "verbose": False, "_last_lr": [1e-5],
                      "lr_lambdas": [{}]},
        "config": config,
        "epoch": 15,
        "train_loss": 1.25,
    }
