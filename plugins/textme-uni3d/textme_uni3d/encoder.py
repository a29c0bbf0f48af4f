"""The ``uni3d`` encoder: Uni3D's point encoder (modal branch) and EVA02-E-14-plus text tower.

Model names:

* ``"uni3d-g"`` (default), ``"uni3d-l"``, ``"uni3d-b"``, ``"uni3d-s"``, ``"uni3d-ti"`` and their
  ``-no-lvis`` variants: released weights, downloaded from ``BAAI/Uni3D``
  (``modelzoo/<name>/model.pt``) unless ``checkpoint=`` names a local copy;
* ``"tiny"``, ``"small"``, ``"base"``, ``"large"``, ``"giant"``: the architecture only, with
  ``checkpoint=`` (your own weights) or ``random_init=True``; ``arch={...}`` overrides fields of
  the architecture (tests use a tiny one).

Weights always load strictly; random weights only with ``random_init=True``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from textme_sdk import InputSpec, ModalityEncoder
from textme_sdk.checkpoints import RANDOM_WEIGHTS, warn_random_weights
from textme_sdk.encoders import absolute_path
from textme_sdk.errors import InvalidInputError

from .arch import DEFAULT_MODEL, HUB_REPO, Uni3DArch, resolve_model
from .errors import Uni3DLoadError
from .points import POINT_EXTENSIONS, PointParams, to_model_input
from .text import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

logger = logging.getLogger(__name__)

__all__ = ["Uni3DEncoder"]

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_WEIGHTS_LICENSE = (
    "Uni3D code: MIT (baaivision/Uni3D); Uni3D weights (BAAI/Uni3D): licence not stated by "
    "upstream - check with BAAI before redistribution or commercial use; text tower "
    "EVA02-E-14-plus laion2b_s9b_b144k: MIT (model card)"
)


def _abs_file(path: str | None) -> str | None:
    """Absolute form of an existing local file; anything else (a tag) unchanged."""
    return absolute_path(path) if path and os.path.isfile(os.path.expanduser(path)) else path


class Uni3DEncoder(ModalityEncoder):
    """Uni3D (BAAI) as a textme-sdk 3D point-cloud encoder, 1024-d.

    Args:
        model: a released name (``"uni3d-g"``, ``"uni3d-b-no-lvis"``...) or a size name
            (``"tiny"`` ... ``"giant"``) with ``checkpoint`` or ``random_init``.
        checkpoint: a local Uni3D checkpoint (upstream ``model.pt``: weights under
            ``"module"``, keys possibly prefixed ``module.``; or a ``.safetensors`` state dict)
            used instead of downloading.
        arch: overrides of architecture fields (:class:`~textme_uni3d.arch.Uni3DArch`).
        clip_model: open_clip model whose text tower is the text branch (upstream:
            ``"EVA02-E-14-plus"``).
        clip_pretrained: its open_clip pretrained tag (``"laion2b_s9b_b144k"``) or a local
            open_clip checkpoint file.
        random_init: random point-encoder and text-tower weights (tests only).
        sampling: ``"random"`` or ``"fps"``: how clouds with more than ``npoints`` points are
            reduced (see :mod:`textme_uni3d.points`).
        seed: seed of the deterministic resampling and mesh surface sampling.
        revision: Hub revision of ``BAAI/Uni3D``.
        cache_dir: Hugging Face cache folder for both downloads.
        embedding_dim: expected output size (checked on load; stored by bundles).
        micro_batch: clouds per forward pass inside a batch (bounds memory; results do not
            depend on it).
        device: ``"cuda"``, ``"cpu"``...; default CUDA when available.
        dtype: weights dtype; default float32 (upstream evaluates in float32); float16 or
            bfloat16 on GPUs. FPS and kNN always run in float32.

    Inputs to :meth:`encode_modal`: file paths (``.ply``, ``.npy``, ``.npz``, ``.obj``,
    ``.off``, ``.stl``, ``.glb``, ``.gltf``), ``N x 3`` / ``N x 6`` numpy arrays or torch
    tensors (xyz [+ rgb in [0, 1] or uint8]), or dicts ``{"xyz": ..., "rgb": ...}``.
    """

    name = "uni3d"
    modality = "3d"
    embedding_dim = 1024
    license = _WEIGHTS_LICENSE
    input_spec = InputSpec(
        "point cloud",
        "file paths (.ply, .npy, .npz point clouds; .obj/.off/.stl/.glb/.gltf meshes, sampled on "
        "the surface), N x 3 or N x 6 (xyz + rgb) numpy arrays / torch tensors, or dicts "
        "{'xyz', 'rgb'}; resampled to 10,000 points, centred and scaled to the unit sphere",
        POINT_EXTENSIONS,
    )

    def __init__(self, model: str = DEFAULT_MODEL, checkpoint: str | None = None,
                 arch: dict[str, Any] | Uni3DArch | None = None,
                 clip_model: str = DEFAULT_CLIP_MODEL,
                 clip_pretrained: str | None = DEFAULT_CLIP_PRETRAINED, random_init: bool = False,
                 sampling: str = "random", seed: int = 0, revision: str | None = None,
                 cache_dir: str | None = None, embedding_dim: int | None = None,
                 micro_batch: int = 8, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__(device, dtype)
        if isinstance(micro_batch, bool) or not isinstance(micro_batch, int) or micro_batch < 1:
            raise InvalidInputError(f"micro_batch must be a positive integer, got {micro_batch!r}")
        if dtype is not None and dtype not in _DTYPES:
            raise InvalidInputError(f"uni3d supports {_DTYPES}, not {dtype}")
        self.model_name = model
        self.arch, self.hub_file = resolve_model(model, arch)
        if isinstance(arch, Uni3DArch):
            arch = arch.to_dict()
        self._arch_overrides = dict(arch) if arch else None
        self.checkpoint = _abs_file(checkpoint)
        if not random_init and not self.checkpoint and self.hub_file is None:
            raise InvalidInputError(
                f"model {model!r} is an architecture without released weights; pass "
                "checkpoint='/path/to/model.pt', a released name such as 'uni3d-g', or "
                "random_init=True"
            )
        if not random_init and not clip_pretrained:
            raise InvalidInputError(
                "clip_pretrained is needed for the text branch: an open_clip tag (default "
                f"{DEFAULT_CLIP_PRETRAINED!r}) or a local open_clip checkpoint file"
            )
        self.clip_model = clip_model
        self.clip_pretrained = _abs_file(clip_pretrained)
        self.random_init = random_init
        self.points = PointParams(self.arch.npoints, sampling, seed)
        self.revision = revision
        self.cache_dir = cache_dir
        self.embedding_dim = embedding_dim or self.arch.embed_dim
        if random_init:
            self.license = RANDOM_WEIGHTS
        self.micro_batch = micro_batch
        self._model: torch.nn.Module | None = None
        self._text: torch.nn.Module | None = None
        self._tokenizer: Any = None

    # -- loading ----------------------------------------------------------------------------
    def _resolve_checkpoint(self) -> str:
        if self.checkpoint:
            return self.checkpoint
        from huggingface_hub import hf_hub_download

        try:
            return hf_hub_download(HUB_REPO, self.hub_file, revision=self.revision,
                                   cache_dir=self.cache_dir)
        except Exception as exc:  # offline, missing file, auth...
            raise Uni3DLoadError(
                f"could not get {HUB_REPO}/{self.hub_file} ({type(exc).__name__}: {exc}). When "
                "offline the file must already be in the Hugging Face cache; or download it "
                "and pass checkpoint='/path/to/model.pt'"
            ) from exc

    def _build_point_model(self) -> torch.nn.Module:
        from .checkpoint import load_strict, read_state_dict
        from .model import build_uni3d

        try:
            model = build_uni3d(self.arch, "cpu")
        except (RuntimeError, ValueError) as exc:  # unknown timm name, width mismatch
            raise Uni3DLoadError(f"could not build Uni3D {self.model_name!r}: {exc}") from exc
        if self.random_init:
            warn_random_weights("uni3d", self.model_name)
            return model
        path = self._resolve_checkpoint()
        load_strict(model, read_state_dict(path), f"Uni3D checkpoint {path!r}")
        return model

    def _build_text(self) -> tuple[torch.nn.Module, Any]:
        import open_clip

        from .text import build_text_tower, load_text_tower, resolve_clip_weights

        if self.random_init:
            tower = build_text_tower(self.clip_model, "cpu")
        else:
            weights = resolve_clip_weights(self.clip_model, self.clip_pretrained, self.cache_dir)
            tower = load_text_tower(self.clip_model, weights)
        return tower, open_clip.get_tokenizer(self.clip_model)

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Build (once) and move the point encoder and the text tower to ``device``."""
        dtype = dtype or torch.float32
        if self._model is None:
            self._model = self._build_point_model()
            self._text, self._tokenizer = self._build_text()
            self._check_dims()
        self._model.to(device=device, dtype=dtype)
        self._text.to(device=device, dtype=dtype)

    def _check_dims(self) -> None:
        text_dim = int(self._text.output_dim) if hasattr(self._text, "output_dim") else None
        point_dim = self.arch.embed_dim
        if text_dim is not None and text_dim != point_dim:
            raise Uni3DLoadError(
                f"the text tower of {self.clip_model!r} gives {text_dim}-d embeddings but the "
                f"point encoder {point_dim}-d; Uni3D needs the CLIP model it was trained with"
            )
        self.embedding_dim = point_dim  # the base class checks a requested size

    @property
    def model_dtype(self) -> torch.dtype:
        """The dtype of the loaded weights."""
        return self._model.point_encoder.cls_token.dtype

    # -- the encoder contract ---------------------------------------------------------------
    def preprocess(self, inputs: list[Any]) -> torch.Tensor:
        """Read, resample and normalise clouds into one ``[N, npoints, 6]`` float32 tensor."""
        return torch.stack([to_model_input(item, self.points) for item in inputs])

    def encode_modal_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Point encoder on a preprocessed batch ``[B, npoints, 6]``.

        Runs ``micro_batch`` clouds at a time: with 10,000 points the kNN distances and the
        PointNet activations (512 x 64 points, up to 512 channels) take ~200 MB per cloud, so
        a batch of 32 would need ~6 GB at once.
        """
        chunks = batch.split(self.micro_batch)
        return torch.cat([self._model.encode_pc(c.to(self.device, torch.float32)) for c in chunks])

    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Text tower on texts tokenized with the CLIP BPE tokenizer (context 77)."""
        tokens = self._tokenizer(texts).to(self.device)
        return self._text(tokens)

    #: not stored by config() as given: the download cache, the memory bound, arch objects
    config_exclude = ("device", "dtype", "cache_dir", "micro_batch", "arch")

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this encoder: the constructor's, with local files as
        absolute paths and ``arch`` as a dict (``cache_dir`` and ``micro_batch``, which do not
        change the embeddings, are not stored)."""
        cfg = {**super().config(), "checkpoint": self.checkpoint,
               "clip_pretrained": self.clip_pretrained, "arch": self._arch_overrides}
        return {key: value for key, value in cfg.items() if value is not None}

    @property
    def architecture(self) -> Uni3DArch:
        """The resolved architecture."""
        return self.arch
