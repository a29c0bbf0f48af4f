"""The ``cxr_clip`` encoder: CXR-CLIP's radiograph branch (modal) and BioClinicalBERT branch (text).

Weights come from one of:

* a published name (``"swint_mcc"``, the default; ``"r50_m"`` ... see
  :data:`textme_cxr_clip.checkpoint.PUBLISHED`): converted once to safetensors in
  ``$TEXTME_HOME/cxr_clip`` (downloaded from the upstream CDN when not there and not offline);
* ``checkpoint="/path/r50_mcc.tar"`` (converted once, safely, into the cache) or
  ``checkpoint="/path/model.safetensors"`` (a converted file or any CXR-CLIP state dict);
* ``random_init=True`` (tests): random weights of ``architecture=`` or of the family named by
  ``model`` (``"r50"`` / ``"swint"`` or a published name).

The tokenizer is the one the checkpoint was trained with (``emilyalsentzer/Bio_ClinicalBERT``,
from the Hugging Face Hub or its cache) unless ``tokenizer=`` names another id or a local folder.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from textme_sdk import InputSpec, ModalityEncoder
from textme_sdk.checkpoints import RANDOM_WEIGHTS, warn_random_weights
from textme_sdk.encoders import absolute_path
from textme_sdk.encoders import check_tokenizer as _check
from textme_sdk.errors import InvalidInputError

from .architecture import PRESETS, Architecture
from .checkpoint import (
    PUBLISHED,
    ensure_converted,
    load_converted,
    read_converted_architecture,
    resolve_published,
)
from .errors import ArchitectureError, CXRClipLoadError, TokenizerError
from .images import RADIOGRAPH_EXTENSIONS, build_transform, to_rgb

__all__ = ["DEFAULT_MODEL", "LICENSE", "CXRClipEncoder", "check_tokenizer", "load_tokenizer"]

#: The Swin-Tiny checkpoint pre-trained on the most data (MIMIC-CXR + CheXpert + ChestX-ray14).
DEFAULT_MODEL = "swint_mcc"
#: Licence of the upstream code and weights (LICENSE file: BY-NC-SA; README: BY-NC).
LICENSE = ("CC BY-NC-SA 4.0 (kakaobrain/cxr-clip LICENSE; the README says CC BY-NC 4.0): "
           "non-commercial use only, weights included")
_PROBE = "no acute cardiopulmonary process. heart size is normal"
_TORCH_SUFFIXES = (".tar", ".pt", ".pth", ".ckpt", ".bin")


def _family(name: str | None) -> str | None:
    """``"r50"`` / ``"swint"`` for a published name or a family name, else ``None``."""
    if name in PRESETS:
        return name
    if name in PUBLISHED:
        return PUBLISHED[name].family
    return None


def _family_of(arch: Architecture) -> str:
    return "r50" if arch.image_encoder == "resnet" else "swint"


def load_tokenizer(name_or_path: str, cache_dir: str | None = None) -> Any:
    """``AutoTokenizer.from_pretrained`` (as upstream's ``load_tokenizer``) with a clear error."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, cache_dir=cache_dir)
    except (OSError, ValueError, TypeError) as exc:
        raise TokenizerError(
            f"could not load the tokenizer {name_or_path!r} ({type(exc).__name__}: {exc}). When "
            "offline it must already be in the Hugging Face cache; or pass tokenizer=<local "
            "folder> (e.g. AutoTokenizer.from_pretrained(...).save_pretrained(folder) once)"
        ) from exc
    tokenizer.padding_side = "right"  # "eos" pooling reads the [SEP] at attention_mask.sum() - 1
    return tokenizer


def check_tokenizer(tokenizer: Any, vocab_rows: int, what: str) -> None:
    """Refuse tokenizers that would give silently wrong embeddings.

    transformers 5 can return a few-token stub tokenizer offline, which maps every word to
    ``[UNK]``; ids beyond the embedding table would index out of range.

    Raises:
        TokenizerError: tiny vocabulary, a probe sentence of unknown tokens only, or more
            tokens than the text encoder embeds.
    """
    _check(tokenizer, vocab_rows, repr(what), _PROBE, error=TokenizerError)


class CXRClipEncoder(ModalityEncoder):
    """CXR-CLIP (Kakao Brain, MICCAI 2023) as a textme-sdk chest X-ray encoder.

    Args:
        model: a published checkpoint (``"swint_mcc"`` default, ``"swint_mc"``, ``"swint_m"``,
            ``"r50_mcc"``, ``"r50_mc"``, ``"r50_m"``) or, with ``checkpoint``/``random_init``, a
            family (``"r50"``, ``"swint"``) that the weights must match.
        checkpoint: a local ``.tar`` (upstream format, converted once) or ``.safetensors`` file.
        tokenizer: tokenizer id or folder; default: the one the checkpoint names
            (``emilyalsentzer/Bio_ClinicalBERT``).
        random_init: random weights (tests); architecture from ``architecture`` or ``model``.
        architecture: an :class:`~textme_cxr_clip.architecture.Architecture` or its ``to_dict()``,
            only with ``random_init=True``.
        embedding_dim: expected output size (stored in bundles); checked on load.
        cache_dir: where converted checkpoints live (default ``$TEXTME_HOME/cxr_clip``).
        hf_cache_dir: Hugging Face cache for the tokenizer.
        device: default CUDA when available.
        dtype: weights dtype; default float32 (upstream evaluates in float32).
    """

    name = "cxr_clip"
    modality = "xray"
    embedding_dim = 512
    license = LICENSE
    input_spec = InputSpec(
        "radiograph",
        "file paths (PNG, JPEG, TIFF, DICOM), PIL images, pydicom Datasets, numpy arrays "
        "(H x W greyscale or H x W x C) or torch tensors (C x H x W); greyscale is replicated to "
        "RGB, 16-bit and DICOM data are windowed/stretched to 8 bits, then Resize + CenterCrop "
        "to the model's size (224) and normalised as upstream",
        RADIOGRAPH_EXTENSIONS,
    )

    def __init__(self, model: str | None = None, checkpoint: str | os.PathLike | None = None,
                 tokenizer: str | os.PathLike | None = None, random_init: bool = False,
                 architecture: Architecture | dict[str, Any] | None = None,
                 embedding_dim: int | None = None, cache_dir: str | None = None,
                 hf_cache_dir: str | None = None, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__(device, dtype)
        if model is not None and not isinstance(model, str):
            raise InvalidInputError(f"model must be a string, got {type(model).__name__}")
        if architecture is not None and not random_init:
            raise InvalidInputError(
                "architecture= describes random weights; pass random_init=True, or load real "
                "weights with checkpoint= (they carry their own architecture)"
            )
        if random_init and checkpoint is not None:
            raise InvalidInputError("pass either checkpoint= or random_init=True, not both")
        if model is not None and _family(model) is None:
            raise InvalidInputError(
                f"unknown CXR-CLIP model {model!r}; published: {sorted(PUBLISHED)}; "
                "architectures: 'r50', 'swint'"
            )
        self.model = model
        self.checkpoint: str | None = None
        if checkpoint is not None:
            self.checkpoint = os.path.abspath(os.path.expanduser(os.fspath(checkpoint)))
        self.random_init = bool(random_init)
        self.cache_dir = cache_dir
        self.hf_cache_dir = hf_cache_dir
        self.tokenizer_name = absolute_path(os.fspath(tokenizer)) if tokenizer is not None else None
        self._arch: Architecture | None = None
        if self.random_init:
            self._arch = (Architecture.from_dict(architecture) if architecture is not None
                          else PRESETS[_family(model) or "swint"])
        elif self.checkpoint is None:
            self.model = model or DEFAULT_MODEL
            if self.model not in PUBLISHED:
                raise InvalidInputError(
                    f"{self.model!r} names an architecture, not weights: pass checkpoint="
                    "'/path/to/file.tar' or a published name "
                    f"({', '.join(sorted(PUBLISHED))}), or random_init=True"
                )
        elif self.checkpoint.endswith(".safetensors") and os.path.isfile(self.checkpoint):
            try:  # cheap: the header only; a broken file is reported by load()
                self._arch = read_converted_architecture(self.checkpoint)
            except CXRClipLoadError:
                self._arch = None
        self.embedding_dim = embedding_dim or (self._arch.embedding_dim if self._arch else 512)
        self.license = RANDOM_WEIGHTS if self.random_init else LICENSE
        self._model: torch.nn.Module | None = None
        self._tokenizer: Any = None
        self._transform: Any = None

    @property
    def architecture(self) -> Architecture | None:
        """The architecture (known before loading for random and converted weights)."""
        return self._arch

    # -- loading ----------------------------------------------------------------------------
    def _weights(self) -> tuple[dict[str, torch.Tensor] | None, Architecture]:
        if self.random_init:
            return None, self._arch  # type: ignore[return-value]
        if self.checkpoint is not None:
            if not os.path.isfile(self.checkpoint):
                raise CXRClipLoadError(f"checkpoint file not found: {self.checkpoint!r}")
            path = self.checkpoint
            if path.endswith(_TORCH_SUFFIXES):
                path = os.fspath(ensure_converted(path, self.cache_dir))
            elif not path.endswith(".safetensors"):
                raise CXRClipLoadError(
                    f"{path!r}: expected a .tar/.pt checkpoint of kakaobrain/cxr-clip or a "
                    ".safetensors file"
                )
        else:
            path = os.fspath(resolve_published(self.model or DEFAULT_MODEL, self.cache_dir))
        state, arch = load_converted(path)
        return state, arch

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Build the network, load the weights strictly, load the tokenizer."""
        from .model import build_model, load_weights

        if self._model is not None:
            self._model.to(device=device, dtype=dtype or self.model_dtype)
            return
        state, arch = self._weights()
        wanted = _family(self.model)
        if wanted is not None and wanted != _family_of(arch):
            raise ArchitectureError(
                f"model={self.model!r} is a {wanted} but the weights hold a {_family_of(arch)} "
                f"({arch.image_encoder}); drop model= or use the matching checkpoint"
            )
        if state is None:
            warn_random_weights("cxr_clip", f"CXR-CLIP {_family_of(arch)}")
            model = build_model(arch, "cpu", seed=0)
        else:
            model = build_model(arch, "cpu")
            load_weights(model, state)
        tokenizer_name = self.tokenizer_name or arch.tokenizer
        tokenizer = load_tokenizer(tokenizer_name, self.hf_cache_dir)
        check_tokenizer(tokenizer, arch.text.vocab_size, tokenizer_name)
        self._arch = arch
        self._model = model.to(device=device, dtype=dtype or torch.float32).eval()
        self._tokenizer = tokenizer
        self._transform = build_transform(arch.image_size, arch.mean, arch.std)
        self.embedding_dim = arch.embedding_dim  # the base class checks a requested size

    @property
    def model_dtype(self) -> torch.dtype:
        """The dtype of the loaded weights (inputs are cast to it)."""
        return next(self._model.parameters()).dtype  # type: ignore[union-attr]

    # -- the encoder contract ---------------------------------------------------------------
    def preprocess(self, inputs: list[Any]) -> torch.Tensor:
        """Decode radiographs and apply upstream's eval transform: ``[N, 3, S, S]``."""
        if self._transform is None:
            self.load()
        return torch.stack([self._transform(to_rgb(item)) for item in inputs])

    def encode_modal_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Image branch: global feature -> ``image_projection``."""
        pixels = batch.to(self.device, self.model_dtype)
        return self._model.embed_image(pixels)  # type: ignore[union-attr]

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Upstream's evaluation tokenization: pad to the longest, truncate at
        ``text_max_length`` (256) tokens."""
        if self._tokenizer is None:
            self.load()
        max_length = self._arch.text_max_length  # type: ignore[union-attr]
        return dict(self._tokenizer(texts, padding="longest", truncation=True,
                                    max_length=max_length, return_tensors="pt"))

    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Text branch: BioClinicalBERT pooled at [SEP] -> ``text_projection``."""
        tokens = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        return self._model.embed_text(tokens)  # type: ignore[union-attr]

    #: not stored by config() as given: cache folders, an Architecture object
    config_exclude = ("device", "dtype", "cache_dir", "hf_cache_dir", "architecture")

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this encoder: the constructor's, with local paths
        stored absolute, the published model named when it was the default, and the
        architecture of random weights as a dict (cache folders are not stored)."""
        cfg = {**super().config(), "model": self.model, "checkpoint": self.checkpoint,
               "tokenizer": self.tokenizer_name}
        if self.random_init:
            cfg["architecture"] = self._arch.to_dict()  # type: ignore[union-attr]
        return {key: value for key, value in cfg.items() if value is not None}
