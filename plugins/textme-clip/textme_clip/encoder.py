"""The ``clip`` encoder: an open_clip model's image tower (modal branch) and text tower.

Model names follow open_clip:

* ``"ARCH:TAG"`` - a built-in architecture with one of its pretrained tags
  (``open_clip.list_pretrained()``), e.g. ``"ViT-H-14:laion2b_s32b_b79k"`` (the default);
* ``"ARCH"`` plus ``pretrained="TAG"`` or ``pretrained="/path/to/checkpoint.{pt,bin,safetensors}"``;
* ``"hf-hub:org/repo"`` or ``"local-dir:/path"`` - config and weights from the Hub or a folder.

Weights always load strictly (open_clip's ``require_pretrained``); random weights only with an
explicit ``random_init=True`` (tests, architecture checks).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import Any

import torch

from textme_sdk import InputSpec, ModalityEncoder
from textme_sdk.checkpoints import RANDOM_WEIGHTS, warn_random_weights
from textme_sdk.encoders import absolute_path, check_tokenizer, default_dtype
from textme_sdk.errors import EncoderLoadError, InvalidInputError

from .images import IMAGE_EXTENSIONS, to_pil

__all__ = ["CLIPEncoder", "CLIPLoadError", "ModelSpec", "parse_model_spec", "build_open_clip",
           "DEFAULT_MODEL"]

DEFAULT_ARCH = "ViT-H-14"
DEFAULT_TAG = "laion2b_s32b_b79k"
DEFAULT_MODEL = f"{DEFAULT_ARCH}:{DEFAULT_TAG}"
_SCHEMAS = ("hf-hub:", "local-dir:")
_LOCAL_DIR = "local-dir:"
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_PROBE = "a photo of a dog playing with a red ball on the grass"

#: Output sizes of common architectures, so ``embedding_dim`` is known before loading.
_KNOWN_DIMS: dict[str, int] = {
    "ViT-H-14": 1024, "ViT-L-14": 768, "ViT-L-14-336": 768, "ViT-B-32": 512, "ViT-B-16": 512,
    "ViT-g-14": 1024, "ViT-bigG-14": 1280, "RN50": 1024, "RN101": 512, "convnext_base_w": 640,
}

#: Licences of the weights, by pretrained-tag prefix (the open_clip code itself is MIT).
_WEIGHT_LICENSES: tuple[tuple[str, str], ...] = (
    ("openai", "MIT"),
    ("laion", "MIT"),
    ("datacomp", "MIT"),
    ("commonpool", "MIT"),
    ("dfn", "Apple Sample Code License"),
    ("metaclip", "CC-BY-NC-4.0"),
    ("webli", "Apache-2.0"),
)


class CLIPLoadError(EncoderLoadError):
    """An open_clip model or its weights could not be loaded."""


@dataclass(frozen=True)
class ModelSpec:
    """Which open_clip model to build.

    Attributes:
        name: the open_clip model name (``"ViT-H-14"``, ``"hf-hub:org/repo"``, ``"local-dir:..."``).
        pretrained: a pretrained tag or checkpoint path; ``None`` when ``name`` carries a schema
            (the weights come with it) or for random weights.
        random_init: build with random weights (no download, nothing loaded).
    """

    name: str
    pretrained: str | None
    random_init: bool = False

    @property
    def has_schema(self) -> bool:
        return self.name.startswith(_SCHEMAS)

    @property
    def display(self) -> str:
        return f"{self.name}:{self.pretrained}" if self.pretrained else self.name


def parse_model_spec(model: str, pretrained: str | None = None,
                     random_init: bool = False) -> ModelSpec:
    """Split ``model`` / ``pretrained`` into a :class:`ModelSpec`; cheap (no open_clip import).

    Raises:
        InvalidInputError: conflicting or missing weights.
    """
    if not isinstance(model, str) or not model:
        raise InvalidInputError(f"model must be a non-empty string, got {model!r}")
    if model.startswith(_SCHEMAS):
        if pretrained:
            raise InvalidInputError(
                f"model {model!r} brings its own weights; drop pretrained={pretrained!r}"
            )
        return ModelSpec(model, None, random_init)
    arch, sep, tag = model.partition(":")
    if sep and pretrained and pretrained != tag:
        raise InvalidInputError(
            f"model {model!r} already names the weights {tag!r}; drop pretrained={pretrained!r}"
        )
    weights = tag if sep else pretrained
    if random_init:
        return ModelSpec(arch, weights, True)
    if not weights:
        raise InvalidInputError(
            f"no weights named for open_clip model {arch!r}: use 'ARCH:TAG' (see "
            "open_clip.list_pretrained()), pretrained='/path/to/checkpoint', or "
            "random_init=True for random weights"
        )
    return ModelSpec(arch, weights, False)


def absolute_paths(spec: ModelSpec) -> ModelSpec:
    """The same spec with local paths made absolute, so that a bundle storing
    :meth:`CLIPEncoder.config` rebuilds the encoder from any working directory.

    ``local-dir:`` folders always; ``pretrained`` only when it names an existing checkpoint
    file (a pretrained tag is never a path).
    """
    if spec.name.startswith(_LOCAL_DIR):
        folder = spec.name[len(_LOCAL_DIR):]
        if folder:
            spec = replace(spec, name=_LOCAL_DIR + os.path.abspath(os.path.expanduser(folder)))
    weights = spec.pretrained or ""
    if weights.endswith(_CHECKPOINT_SUFFIXES) and os.path.isfile(os.path.expanduser(weights)):
        spec = replace(spec, pretrained=absolute_path(weights))
    return spec


def peek_embedding_dim(spec: ModelSpec, cache_dir: str | None = None) -> int:
    """The output size a spec will have, read cheaply without importing open_clip; 0 if unknown.

    Sources, first hit wins: the table of common architectures; ``open_clip_config.json`` of
    a ``local-dir:`` folder or of an ``hf-hub:`` repo already in the Hugging Face cache; the
    built-in config file shipped with open_clip. Loading always measures the real size.
    """
    if spec.name in _KNOWN_DIMS:
        return _KNOWN_DIMS[spec.name]
    try:
        if spec.name.startswith(_LOCAL_DIR):
            path: str | None = os.path.join(spec.name[len(_LOCAL_DIR):], "open_clip_config.json")
        elif spec.name.startswith("hf-hub:"):
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(spec.name[len("hf-hub:"):], "open_clip_config.json",
                                           cache_dir=cache_dir)
            path = found if isinstance(found, str) else None
        else:
            import importlib.util

            found_spec = importlib.util.find_spec("open_clip")  # locates, does not import
            roots = list(found_spec.submodule_search_locations or []) if found_spec else []
            path = os.path.join(roots[0], "model_configs", f"{spec.name}.json") if roots else None
        if not path or not os.path.isfile(path):
            return 0
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        return int(cfg.get("model_cfg", cfg).get("embed_dim", 0))
    except (OSError, ValueError, TypeError, AttributeError, ImportError):  # best effort only
        return 0


def weight_license(spec: ModelSpec) -> str:
    """Best-known licence of the weights a spec names."""
    tag = (spec.pretrained or "").lower()
    for prefix, lic in _WEIGHT_LICENSES:
        if tag.startswith(prefix):
            return lic
    return f"see the model card of {spec.display} (open_clip code: MIT)"


def _precision(device: torch.device, dtype: torch.dtype | None) -> str:
    """open_clip precision string; fp16 on CUDA unless a dtype is given."""
    dtype = default_dtype(device, dtype)
    names = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
    if dtype not in names:
        raise InvalidInputError(f"clip supports float16, bfloat16 or float32, not {dtype}")
    return names[dtype]


def _tag_preprocess(spec: ModelSpec) -> dict[str, Any]:
    """The preprocessing a pretrained tag was trained with (mean, std, interpolation...)."""
    import open_clip

    if spec.has_schema or not spec.pretrained:
        return {}
    cfg = open_clip.get_pretrained_cfg(spec.name, spec.pretrained) or {}
    keys = ("mean", "std", "interpolation", "resize_mode", "fill_color")
    return {k: cfg[k] for k in keys if k in cfg}


def build_open_clip(spec: ModelSpec, device: str | torch.device = "cpu",
                    precision: str = "fp32", cache_dir: str | None = None,
                    load_weights: bool = True) -> tuple[torch.nn.Module, Any, Any]:
    """Build an open_clip model with its eval transform and tokenizer.

    ``load_weights=False`` builds the architecture only (random weights; on ``device="meta"``
    without allocating memory) but keeps the preprocessing of the pretrained tag.

    Raises:
        CLIPLoadError: unknown model, unknown tag, missing file, or weights unavailable.
    """
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    with_weights = load_weights and not spec.random_init
    try:
        with torch.device(device):
            model = open_clip.create_model(
                spec.name,
                pretrained=spec.pretrained if with_weights else None,
                precision=precision,
                device=device,
                cache_dir=cache_dir,
                require_pretrained=with_weights,
                pretrained_text=False,
                force_preprocess_cfg=None if with_weights else _tag_preprocess(spec),
            )
        tokenizer = open_clip.get_tokenizer(spec.name, cache_dir=cache_dir)
    except Exception as exc:  # open_clip raises RuntimeError/ValueError/OSError alike
        raise CLIPLoadError(_load_message(spec, exc)) from exc
    model.eval()
    transform = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    return model, transform, tokenizer


def _load_message(spec: ModelSpec, exc: Exception) -> str:
    reason = str(exc).rstrip(". ")
    msg = f"could not load open_clip model {spec.display!r}: {type(exc).__name__}: {reason}."
    is_path = bool(spec.pretrained) and ("/" in spec.pretrained or "\\" in spec.pretrained)
    if not spec.has_schema and is_path:
        return msg + " Check that the checkpoint file exists and matches the architecture."
    return msg + (
        " Check the name against open_clip.list_pretrained(); when offline, the weights must "
        "already be in the Hugging Face cache (or pass a local checkpoint file)."
    )


def _text_vocab_rows(model: torch.nn.Module) -> int | None:
    """Rows of the token-embedding table of an open_clip model's text tower (``None``: unknown)."""
    text = getattr(model, "text", model)  # CustomTextCLIP keeps its text tower under .text
    table = getattr(text, "token_embedding", None)
    if table is None and hasattr(getattr(text, "transformer", None), "get_input_embeddings"):
        table = text.transformer.get_input_embeddings()  # a Hugging Face text tower
    return int(table.num_embeddings) if isinstance(table, torch.nn.Embedding) else None


def _check_tokenizer(tokenizer: Any, model: torch.nn.Module, spec: ModelSpec) -> None:
    """Refuse a Hugging Face tokenizer that would give silently wrong embeddings.

    open_clip wraps the tokenizers of Hugging Face text towers (``HFTokenizer.tokenizer``);
    those get textme-sdk's guard (:func:`textme_sdk.encoders.check_tokenizer`). open_clip's own
    CLIP BPE tokenizer reads the vocabulary shipped inside the open_clip package, so it cannot
    be an offline stub, and it has no Hugging Face interface to probe.
    """
    inner = getattr(tokenizer, "tokenizer", None)
    rows = _text_vocab_rows(model)
    if inner is None or rows is None or not hasattr(inner, "__len__"):
        return
    check_tokenizer(inner, rows, f"of {spec.display!r}", _PROBE, error=CLIPLoadError)


class CLIPEncoder(ModalityEncoder):
    """An open_clip model as a textme-sdk image encoder.

    Args:
        model: ``"ARCH:TAG"``, ``"ARCH"`` (with ``pretrained``), ``"hf-hub:org/repo"`` or
            ``"local-dir:/path"``. Default ``"ViT-H-14:laion2b_s32b_b79k"`` (1024-d), the
            paper's image encoder.
        pretrained: a pretrained tag or a checkpoint file, when ``model`` has no tag.
        random_init: build with random weights instead of loading any (tests only).
        embedding_dim: expected output size; checked on load. Without it the size is read
            cheaply from the model's config where possible (see :func:`peek_embedding_dim`).
        cache_dir: where open_clip caches downloads (default: the Hugging Face cache).
        device: ``"cuda"``, ``"cpu"``...; default CUDA when available.
        dtype: weights dtype; default float16 on CUDA, float32 on CPU.

    Inputs to :meth:`encode_modal`: file paths, PIL images, numpy arrays (``H x W x C``,
    uint8 or float in [0, 1]) or torch tensors (``C x H x W``), each preprocessed with the
    model's own open_clip eval transform.
    """

    name = "clip"
    modality = "image"
    embedding_dim = 1024
    license = "MIT (open_clip code and the default LAION weights)"
    input_spec = InputSpec(
        "image",
        "file paths, PIL images, numpy arrays (H x W x C, uint8 or float in [0, 1]) or torch "
        "tensors (C x H x W); preprocessed with the model's open_clip transform",
        IMAGE_EXTENSIONS,
    )

    def __init__(self, model: str = DEFAULT_MODEL, pretrained: str | None = None,
                 random_init: bool = False, embedding_dim: int | None = None,
                 cache_dir: str | None = None, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__(device, dtype)
        self.spec = absolute_paths(parse_model_spec(model, pretrained, random_init))
        self.cache_dir = cache_dir
        self.embedding_dim = embedding_dim or peek_embedding_dim(self.spec, cache_dir)
        self.license = weight_license(self.spec) if not random_init else RANDOM_WEIGHTS
        self._model: torch.nn.Module | None = None
        self._transform: Any = None
        self._tokenizer: Any = None

    # -- loading ----------------------------------------------------------------------------
    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Build the open_clip model on ``device`` (or move it there if already built)."""
        if self._model is not None:
            self._model.to(device)
            return
        if self.spec.random_init:
            warn_random_weights("clip", self.spec.display)
        model, transform, tokenizer = build_open_clip(
            self.spec, device, _precision(device, dtype), self.cache_dir
        )
        _check_tokenizer(tokenizer, model, self.spec)
        self._model, self._transform, self._tokenizer = model, transform, tokenizer
        self.embedding_dim = self._probe_dim(device)  # the base class checks a requested size

    def _probe_dim(self, device: torch.device) -> int:
        with torch.inference_mode():
            tokens = self._tokenizer([""]).to(device)
            return int(self._model.encode_text(tokens).shape[-1])

    @property
    def model_dtype(self) -> torch.dtype:
        """The dtype of the loaded weights (inputs are cast to it)."""
        return next(self._model.parameters()).dtype

    # -- the encoder contract ---------------------------------------------------------------
    def preprocess(self, inputs: list[Any]) -> torch.Tensor:
        """Decode and transform a list of images into one ``[N, 3, H, W]`` float tensor."""
        if self._transform is None:
            self.load()
        return torch.stack([self._transform(to_pil(item)) for item in inputs])

    def encode_modal_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Image tower on a preprocessed batch."""
        pixels = batch.to(self.device, self.model_dtype)
        return self._model.encode_image(pixels)

    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Text tower on a batch of texts, tokenized with the model's own open_clip tokenizer."""
        tokens = self._tokenizer(texts).to(self.device)
        return self._model.encode_text(tokens)

    #: not stored by config(): where downloads are cached
    config_exclude = ("device", "dtype", "cache_dir")

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this encoder: the constructor's, with ``model`` /
        ``pretrained`` as parsed (architecture or ``hf-hub:`` / ``local-dir:`` id, and the tag or
        checkpoint file).

        Local paths are stored absolute, so ``TextME.from_pretrained`` rebuilds the same weights
        on this machine from any working directory (a bundle trained on local weights needs
        those files where they were). ``cache_dir`` is not stored.
        """
        cfg = {**super().config(), "model": self.spec.name, "pretrained": self.spec.pretrained}
        return {key: value for key, value in cfg.items() if value is not None}
