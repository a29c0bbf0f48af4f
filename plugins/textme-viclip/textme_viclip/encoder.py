"""The ``viclip`` encoder: InternVid's ViCLIP video tower (modal branch) and text tower.

Model choices:

* ``model="ViCLIP-L-14"`` (default, 768-d) with weights ``ViClip-InternVid-10M-FLT.pth`` from the
  gated Hub repo ``OpenGVLab/ViCLIP``;
* ``model="ViCLIP-B-16"`` (512-d) with a local ``ViCLIP-B_InternVid-FLT-10M.pth``;
* ``checkpoint=`` a local ``.pth`` / ``.safetensors`` file or an ``hf://ORG/REPO/FILE`` name;
* ``arch={...}`` overrides config fields for custom (e.g. tiny test) sizes.

Weights load strictly (every key and shape must match) and never through plain unpickling;
``.pth`` files are converted once to safetensors (see :mod:`textme_viclip.weights`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from textme_sdk import InputSpec, ModalityEncoder
from textme_sdk.checkpoints import RANDOM_WEIGHTS, warn_random_weights
from textme_sdk.encoders import default_dtype
from textme_sdk.errors import InvalidInputError

from .model import VARIANTS, ViCLIPConfig, config_for
from .video import VIDEO_EXTENSIONS, clip_tensor
from .weights import (
    DEFAULT_CHECKPOINTS,
    HUB_SCHEME,
    KNOWN_CHECKPOINTS,
    ViCLIPLoadError,
    load_state_dict,
    load_state_dict_file,
    resolve_checkpoint,
)

__all__ = ["DEFAULT_MODEL", "ViCLIPEncoder", "build_viclip"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "ViCLIP-L-14"
LICENSE = ("code: Apache-2.0 (OpenGVLab/InternVideo); weights: OpenGVLab's terms on the gated "
           "Hub repo (no separate weight licence in the code repo; trained on InternVid - "
           "treat as research/non-commercial unless the model card says otherwise)")


def build_viclip(cfg: ViCLIPConfig, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The architecture with random weights (on ``device="meta"``: shapes only, no memory)."""
    from .model import ViCLIP

    with torch.device(device):
        return ViCLIP(cfg).eval()


def _dtype_for(device: torch.device, dtype: torch.dtype | None) -> torch.dtype:
    """``dtype``, by default float16 on CUDA and float32 elsewhere."""
    dtype = default_dtype(device, dtype)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise InvalidInputError(f"viclip supports float16, bfloat16 or float32, not {dtype}")
    return dtype


class ViCLIPEncoder(ModalityEncoder):
    """InternVid ViCLIP as a textme-sdk video encoder.

    Args:
        model: ``"ViCLIP-L-14"`` (default, 768-d) or ``"ViCLIP-B-16"`` (512-d).
        checkpoint: a local ``.pth`` / ``.safetensors`` file or ``hf://ORG/REPO/FILE``. Default
            for ViCLIP-L-14: ``hf://OpenGVLab/ViCLIP/ViClip-InternVid-10M-FLT.pth`` (gated:
            accept the terms and log in once). ViCLIP-B-16 has no verified Hub copy: pass its
            ``ViCLIP-B_InternVid-FLT-10M.pth``.
        revision: Hub revision of an ``hf://`` checkpoint.
        arch: overrides of :class:`~textme_viclip.model.ViCLIPConfig` fields (custom sizes).
        random_init: random weights, nothing loaded (tests, architecture checks).
        embedding_dim: expected output size; checked against the architecture.
        cache_dir: Hugging Face cache folder for ``hf://`` downloads.
        local_files_only: never download (``HF_HUB_OFFLINE=1`` does the same).
        convert_to_safetensors: convert a ``.pth`` once to safetensors under
            ``$TEXTME_HOME/viclip`` and read that afterwards.
        token: Hugging Face token for the gated repo (default: the logged-in one); not stored.
        device: ``"cuda"``, ``"cpu"``...; default CUDA when available.
        dtype: default float16 on CUDA, float32 on CPU.

    Inputs to :meth:`encode_modal`: video file paths, numpy arrays ``[T, H, W, 3]``, torch
    tensors ``[T, H, W, 3]`` or ``[T, 3, H, W]`` (uint8 0..255 or float 0..1, RGB), or lists of
    RGB frames. Eight frames at stride ``T // 8`` are taken, resized to 224 x 224 and
    normalised with ImageNet mean/std, as upstream.
    """

    name = "viclip"
    modality = "video"
    embedding_dim = 768
    license = LICENSE
    input_spec = InputSpec(
        "video",
        "video file paths, numpy arrays [T, H, W, 3] / torch tensors [T, H, W, 3] or "
        "[T, 3, H, W] (uint8 or float 0..1, RGB), or lists of RGB frames; 8 frames at stride "
        "T // 8, 224 x 224, ImageNet mean/std",
        VIDEO_EXTENSIONS,
    )

    def __init__(self, model: str = DEFAULT_MODEL, checkpoint: str | os.PathLike | None = None,
                 revision: str | None = None, arch: dict[str, Any] | None = None,
                 random_init: bool = False, embedding_dim: int | None = None,
                 cache_dir: str | None = None, local_files_only: bool = False,
                 convert_to_safetensors: bool = True, token: str | bool | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__(device, dtype)
        if model not in VARIANTS:
            raise InvalidInputError(
                f"unknown ViCLIP model {model!r}; choose one of {sorted(VARIANTS)} (custom sizes: "
                "arch={...})"
            )
        try:
            self.cfg = config_for(model, arch)
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(f"invalid ViCLIP arch={arch!r}: {exc}") from exc
        if embedding_dim is not None and embedding_dim != self.cfg.embed_dim:
            raise ViCLIPLoadError(
                f"{model} with arch={arch} produces {self.cfg.embed_dim}-d embeddings, but "
                f"embedding_dim={embedding_dim} was requested (e.g. by a bundle); use the "
                "matching model"
            )
        self.model_name = model
        self.arch = dict(arch) if arch else None
        self.random_init = random_init
        if checkpoint is not None:
            checkpoint = os.fspath(checkpoint)
            if not checkpoint.startswith(HUB_SCHEME):
                checkpoint = os.path.abspath(os.path.expanduser(checkpoint))
        self.checkpoint: str | None = checkpoint
        self.revision = revision
        self.cache_dir = cache_dir
        self.local_files_only = local_files_only
        self.convert_to_safetensors = convert_to_safetensors
        self._token = token
        self.embedding_dim = self.cfg.embed_dim
        if random_init:
            self.license = RANDOM_WEIGHTS
        self._model: torch.nn.Module | None = None
        self._tokenizer: Any = None

    # -- loading ----------------------------------------------------------------------------
    @property
    def weights_source(self) -> str | None:
        """The checkpoint that will be loaded (``None`` for random weights)."""
        if self.random_init:
            return None
        return self.checkpoint or DEFAULT_CHECKPOINTS.get(self.model_name)

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Build ViCLIP and load its weights strictly onto ``device``."""
        target_dtype = _dtype_for(device, dtype)
        if self._model is not None:
            self._model.to(device=device, dtype=target_dtype)
            return
        from .tokenizer import ViCLIPTokenizer

        tokenizer = ViCLIPTokenizer(self.cfg.context_length)
        if self.cfg.vocab_size < tokenizer.vocab_size:
            raise ViCLIPLoadError(
                f"vocab_size={self.cfg.vocab_size} is smaller than the CLIP BPE vocabulary "
                f"({tokenizer.vocab_size} ids); keep vocab_size=49408"
            )
        if self.random_init:
            warn_random_weights("viclip", self.model_name)
            model = build_viclip(self.cfg, "cpu")
        else:
            model = self._load_weights()
        self._model = model.to(device=device, dtype=target_dtype).eval()
        self._tokenizer = tokenizer

    def _load_weights(self) -> torch.nn.Module:
        source = self.weights_source
        if source is None:
            known = "; ".join(KNOWN_CHECKPOINTS.get(self.model_name, ()))
            raise ViCLIPLoadError(
                f"{self.model_name} has no default download with a verified layout; pass "
                f"checkpoint='/path/to/file.pth' (published: {known}) or random_init=True"
            )
        path = resolve_checkpoint(source, self.revision, self.cache_dir, self.local_files_only,
                                  self._token)
        state = load_state_dict_file(path, cache=self.convert_to_safetensors)
        model = build_viclip(self.cfg, "meta")
        load_state_dict(model, state, repr(source), self.model_name)
        return model

    @property
    def model_dtype(self) -> torch.dtype:
        """The dtype of the loaded weights (inputs are cast to it)."""
        return next(self._model.parameters()).dtype

    @property
    def network(self) -> torch.nn.Module:
        """The loaded :class:`~textme_viclip.model.ViCLIP` module (loads on first use)."""
        self.load()
        return self._model

    # -- the encoder contract ---------------------------------------------------------------
    def preprocess(self, inputs: list[Any]) -> torch.Tensor:
        """Decode, sample, resize and normalise videos into ``[N, T, 3, S, S]`` float32."""
        return torch.stack([clip_tensor(item, self.cfg.num_frames, self.cfg.image_size)
                            for item in inputs])

    def encode_modal_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Video tower on a preprocessed batch (upstream's test path: no token masking)."""
        return self._model.encode_video(batch.to(self.device, self.model_dtype))

    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Text tower on texts tokenized with CLIP BPE at ViCLIP's context of 32 tokens."""
        return self._model.encode_text(self._tokenizer(texts).to(self.device))

    #: not stored by config(): download settings and the Hugging Face token
    config_exclude = ("device", "dtype", "cache_dir", "local_files_only",
                      "convert_to_safetensors", "token")

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this encoder: the constructor's, with a local
        checkpoint path absolute. Download settings (``cache_dir``, ``local_files_only``,
        ``convert_to_safetensors``) and the ``token`` are not stored."""
        cfg = super().config()
        if self.checkpoint is not None:
            cfg["checkpoint"] = self.checkpoint
        return cfg
