"""What a CXR-CLIP model looks like: image encoder, text encoder, projection heads, pooling and
preprocessing sizes, as plain data (JSON round trip) with the two published families as presets.

Everything here follows kakaobrain/cxr-clip (``configs/model/clip_{resnet,swin}_clinical.yaml``,
``cxrclip/model/clip.py``, ``cxrclip/model/modules/*.py``):

* image encoder ``"resnet"``: torchvision ResNet-50 with ``fc`` deleted (2048-d, global average
  pool), normalised with the ImageNet mean/std; ``"swin"``: Hugging Face
  ``microsoft/swin-tiny-patch4-window7-224`` (768-d), whose global feature is
  ``last_hidden_state[:, 0]`` (the first patch token, not the pooled output), normalised with
  mean = std = 0.5;
* text encoder: ``emilyalsentzer/Bio_ClinicalBERT`` (a BERT-base with a 28,996-token cased
  vocabulary) pooled at the ``[SEP]`` token (``pooling: "eos"``, index
  ``attention_mask.sum(-1) - 1``);
* projection heads: ``linear`` (one ``nn.Linear`` with bias) to 512 dimensions in both released
  configs; the ``mlp`` head of ``projection.py`` is supported too;
* ``temperature: 0.07`` -> a learnable ``logit_scale`` parameter in the state dict;
* 224-pixel images, text truncated at 256 tokens (``configs/train.yaml``: ``base``).

:func:`architecture_from_state` reads the sizes from a checkpoint's tensors, so published
checkpoints and any re-trained variant (or the tiny test models) describe themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .errors import ArchitectureError

__all__ = [
    "BIO_CLINICAL_BERT",
    "HF_MEAN",
    "HF_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PRESETS",
    "SWIN_TINY",
    "Architecture",
    "ArchitectureError",
    "BertSpec",
    "ResNetSpec",
    "SwinSpec",
    "architecture_from_state",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``normalize="huggingface"`` in ``cxrclip/data/data_utils.py``: mean = std = 0.5 per channel.
HF_MEAN = (0.5, 0.5, 0.5)
HF_STD = (0.5, 0.5, 0.5)

BIO_CLINICAL_BERT = "emilyalsentzer/Bio_ClinicalBERT"
SWIN_TINY = "microsoft/swin-tiny-patch4-window7-224"

_POOLINGS = ("eos", "bos", "mean")
_PROJECTIONS = ("linear", "mlp", "none")


@dataclass(frozen=True)
class SwinSpec:
    """Sizes of a Swin Transformer (defaults: ``microsoft/swin-tiny-patch4-window7-224``)."""

    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-5
    num_channels: int = 3

    @property
    def out_dim(self) -> int:
        """Width of the last stage (``hidden_size`` in transformers' ``SwinConfig``)."""
        return int(self.embed_dim * 2 ** (len(self.depths) - 1))


@dataclass(frozen=True)
class ResNetSpec:
    """Sizes of a torchvision bottleneck ResNet (defaults: ResNet-50)."""

    layers: tuple[int, ...] = (3, 4, 6, 3)
    width_per_group: int = 64

    @property
    def out_dim(self) -> int:
        return 2048  # 512 planes x Bottleneck.expansion 4, whatever the depth or width


@dataclass(frozen=True)
class BertSpec:
    """``BertConfig`` values (defaults: ``emilyalsentzer/Bio_ClinicalBERT``'s config.json)."""

    vocab_size: int = 28996
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1


@dataclass(frozen=True)
class Architecture:
    """One CXR-CLIP model.

    Attributes:
        image_encoder: ``"resnet"`` or ``"swin"``.
        swin: Swin sizes (``image_encoder == "swin"``).
        resnet: ResNet sizes (``image_encoder == "resnet"``).
        text: BERT sizes of the text encoder.
        projection: ``"linear"``, ``"mlp"`` or ``"none"`` (no ``projection_head`` in the config).
        proj_dim: output size of the projection heads (the embedding size).
        pooling: text pooling, ``"eos"`` ([SEP] token), ``"bos"`` ([CLS]) or ``"mean"``.
        temperature: ``None`` when the model has no learnable ``logit_scale``.
        text_max_length: tokens kept per text (``base.text_max_length``).
        image_size: side of the square model input (``base.image_size``).
        tokenizer: tokenizer the model was trained with (Hub id or folder).
    """

    image_encoder: str = "swin"
    swin: SwinSpec | None = field(default_factory=SwinSpec)
    resnet: ResNetSpec | None = None
    text: BertSpec = field(default_factory=BertSpec)
    projection: str = "linear"
    proj_dim: int = 512
    pooling: str = "eos"
    temperature: float | None = 0.07
    text_max_length: int = 256
    image_size: int = 224
    tokenizer: str = BIO_CLINICAL_BERT

    def __post_init__(self) -> None:
        if self.image_encoder not in ("resnet", "swin"):
            raise ArchitectureError(
                f"image_encoder must be 'resnet' or 'swin', got {self.image_encoder!r}"
            )
        if self.image_encoder == "swin" and self.swin is None:
            raise ArchitectureError("image_encoder='swin' needs swin=SwinSpec(...)")
        if self.image_encoder == "resnet" and self.resnet is None:
            raise ArchitectureError("image_encoder='resnet' needs resnet=ResNetSpec(...)")
        if self.projection not in _PROJECTIONS:
            raise ArchitectureError(
                f"projection must be one of {_PROJECTIONS}, got {self.projection!r}"
            )
        if self.pooling not in _POOLINGS:
            raise ArchitectureError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        if self.projection == "none" and self.image_dim != self.text.hidden_size:
            raise ArchitectureError(
                f"without projection heads the image ({self.image_dim}-d) and text "
                f"({self.text.hidden_size}-d) features must have the same size"
            )
        if self.text_max_length > self.text.max_position_embeddings:
            raise ArchitectureError(
                f"text_max_length {self.text_max_length} exceeds the text encoder's "
                f"{self.text.max_position_embeddings} positions"
            )
        if self.image_size < 1:
            raise ArchitectureError(f"image_size must be positive, got {self.image_size}")

    @property
    def image_dim(self) -> int:
        """Size of the global image feature before projection (2048 ResNet-50, 768 Swin-T)."""
        spec = self.resnet if self.image_encoder == "resnet" else self.swin
        return spec.out_dim  # type: ignore[union-attr]

    @property
    def embedding_dim(self) -> int:
        """Size of the final (projected) embeddings."""
        return self.text.hidden_size if self.projection == "none" else self.proj_dim

    @property
    def mean(self) -> tuple[float, float, float]:
        """Normalisation mean: upstream switches to ImageNet statistics for ``resnet``."""
        return IMAGENET_MEAN if self.image_encoder == "resnet" else HF_MEAN

    @property
    def std(self) -> tuple[float, float, float]:
        return IMAGENET_STD if self.image_encoder == "resnet" else HF_STD

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Architecture:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo is not ignored).

        Raises:
            ArchitectureError: unknown keys or invalid values.
        """
        if isinstance(data, Architecture):
            return data
        if not isinstance(data, Mapping):
            raise ArchitectureError(
                "an architecture must be a dict (Architecture.to_dict()), got "
                f"{type(data).__name__}"
            )
        values = dict(data)
        _check_keys(values, cls, "architecture")
        if isinstance(values.get("swin"), Mapping):
            values["swin"] = _spec(SwinSpec, values["swin"], ("depths", "num_heads"))
        if isinstance(values.get("resnet"), Mapping):
            values["resnet"] = _spec(ResNetSpec, values["resnet"], ("layers",))
        if isinstance(values.get("text"), Mapping):
            values["text"] = _spec(BertSpec, values["text"], ())
        try:
            return cls(**values)
        except TypeError as exc:
            raise ArchitectureError(f"invalid architecture {dict(data)!r}: {exc}") from exc


def _check_keys(values: Mapping[str, Any], cls: type, what: str) -> None:
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ArchitectureError(
            f"unknown {what} field(s) {unknown}; known fields: {sorted(known)}"
        )


def _spec(cls: type, values: Mapping[str, Any], tuple_fields: tuple[str, ...]) -> Any:
    _check_keys(values, cls, cls.__name__)
    values = dict(values)
    for name in tuple_fields:
        if name in values:
            values[name] = tuple(int(v) for v in values[name])
    return cls(**values)


#: The two families of published checkpoints (``r50_*`` and ``swint_*``).
PRESETS: dict[str, Architecture] = {
    "r50": Architecture(image_encoder="resnet", swin=None, resnet=ResNetSpec()),
    "swint": Architecture(image_encoder="swin", swin=SwinSpec(), resnet=None),
}


# -- reading an architecture off a state dict -------------------------------------------------
_SWIN = "image_encoder.image_encoder."
_RESNET = "image_encoder.resnet."
_BERT = "text_encoder.text_encoder."


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ArchitectureError(
            f"the checkpoint has no {key!r}; it is not a CXR-CLIP (kakaobrain/cxr-clip) model "
            "state dict"
        )
    return tuple(state[key].shape)


def _indices(state: Mapping[str, Any], pattern: str) -> list[int]:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return sorted(found)


def _swin_from_state(state: Mapping[str, torch.Tensor]) -> SwinSpec:
    patch_weight = _SWIN + "embeddings.patch_embeddings.projection.weight"
    embed_dim, channels, patch, _ = _shape(state, patch_weight)
    stages = _indices(state, re.escape(_SWIN) + r"encoder\.layers\.(\d+)\.")
    depths, heads = [], []
    window = 0
    for i in stages:
        blocks = _indices(state, re.escape(_SWIN) + rf"encoder\.layers\.{i}\.blocks\.(\d+)\.")
        depths.append(len(blocks))
        table = _shape(state, _SWIN + f"encoder.layers.{i}.blocks.0.attention.self."
                              "relative_position_bias_table")
        heads.append(table[1])
        side = (math.isqrt(table[0]) + 1) // 2  # the table has (2w - 1)^2 rows
        if (2 * side - 1) ** 2 != table[0] or (window and side != window):
            raise ArchitectureError(f"unexpected relative position table {table} in stage {i}")
        window = side
    if not depths:
        raise ArchitectureError("the checkpoint's Swin image encoder has no stages")
    hidden = _shape(state, _SWIN + "encoder.layers.0.blocks.0.intermediate.dense.weight")[0]
    qkv_bias = (_SWIN + "encoder.layers.0.blocks.0.attention.self.query.bias") in state
    return SwinSpec(embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(heads),
                    window_size=window, patch_size=patch, mlp_ratio=hidden / embed_dim,
                    qkv_bias=qkv_bias, num_channels=channels)


def _resnet_from_state(state: Mapping[str, torch.Tensor]) -> ResNetSpec:
    layers = []
    for i in (1, 2, 3, 4):
        blocks = _indices(state, re.escape(_RESNET) + rf"layer{i}\.(\d+)\.")
        if not blocks:
            raise ArchitectureError(f"the checkpoint's ResNet has no layer{i}")
        layers.append(len(blocks))
    if (_RESNET + "layer1.0.conv3.weight") not in state:
        raise ArchitectureError("only bottleneck ResNets (ResNet-50 and up) are CXR-CLIP encoders")
    width = _shape(state, _RESNET + "layer1.0.conv1.weight")[0]  # = 64 * width_per_group / 64
    return ResNetSpec(layers=tuple(layers), width_per_group=width)


def _bert_from_state(state: Mapping[str, torch.Tensor], name: str | None) -> BertSpec:
    vocab, hidden = _shape(state, _BERT + "embeddings.word_embeddings.weight")
    positions = _shape(state, _BERT + "embeddings.position_embeddings.weight")[0]
    types = _shape(state, _BERT + "embeddings.token_type_embeddings.weight")[0]
    layers = _indices(state, re.escape(_BERT) + r"encoder\.layer\.(\d+)\.")
    ffn = _shape(state, _BERT + "encoder.layer.0.intermediate.dense.weight")[0]
    # The head count is not visible in the tensors. Bio_ClinicalBERT has 12; every standard
    # BERT size (tiny 128/2 ... large 1024/16) has 64-wide heads.
    heads = 12 if name == BIO_CLINICAL_BERT else max(1, hidden // 64)
    return BertSpec(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=len(layers),
                    num_attention_heads=heads, intermediate_size=ffn,
                    max_position_embeddings=positions, type_vocab_size=types)


def _get(config: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    node: Any = config or {}
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def architecture_from_state(state: Mapping[str, torch.Tensor],
                            upstream_config: Mapping[str, Any] | None = None,
                            **overrides: Any) -> Architecture:
    """Describe the model a CXR-CLIP state dict holds.

    Sizes come from the tensors; what tensors cannot show (text pooling, temperature presence,
    text length, image size, tokenizer) from the checkpoint's own training config when given
    (``ckpt["config"]``), else the upstream defaults.

    Args:
        state: the model state dict (upstream key names, ``module.`` already stripped).
        upstream_config: the checkpoint's ``config`` as plain dicts (optional).
        **overrides: Architecture fields to set explicitly (e.g. ``image_size=64``).

    Raises:
        ArchitectureError: not a CXR-CLIP state dict, or the config contradicts the tensors.
    """
    model_cfg = _get(upstream_config, "model", default={}) or {}
    if any(k.startswith(_RESNET) for k in state):
        image_encoder, swin, resnet = "resnet", None, _resnet_from_state(state)
    elif any(k.startswith(_SWIN) for k in state):
        image_encoder, swin, resnet = "swin", _swin_from_state(state), None
    else:
        raise ArchitectureError(
            "the checkpoint has neither 'image_encoder.resnet.*' (ResNet-50) nor "
            "'image_encoder.image_encoder.*' (Swin) weights; it is not a CXR-CLIP checkpoint"
        )
    cfg_image = _get(model_cfg, "image_encoder", "name")
    if cfg_image is not None and (cfg_image == "resnet") != (image_encoder == "resnet"):
        raise ArchitectureError(
            f"the checkpoint config names image encoder {cfg_image!r} but its weights are a "
            f"{image_encoder}; the file is inconsistent"
        )
    text_name = _get(model_cfg, "text_encoder", "name")
    text = _bert_from_state(state, text_name)

    if "image_projection.fc.weight" in state:
        projection = "mlp"
    elif "image_projection.projection.weight" in state:
        projection = "linear"
    else:
        projection = "none"
    cfg_projection = _get(model_cfg, "projection_head", "name")
    if cfg_projection is not None and str(cfg_projection).lower() != projection:
        raise ArchitectureError(
            f"the checkpoint config names a {cfg_projection!r} projection head but its weights "
            f"hold a {projection!r} one"
        )
    proj_dim = (_shape(state, "image_projection.projection.weight")[0]
                if projection != "none" else text.hidden_size)
    has_scale = "logit_scale" in state
    temperature = float(_get(model_cfg, "temperature", default=0.07) or 0.07) if has_scale else None

    tokenizer = (_get(upstream_config, "tokenizer", "pretrained_model_name_or_path")
                 or text_name or BIO_CLINICAL_BERT)
    values: dict[str, Any] = {
        "image_encoder": image_encoder,
        "swin": swin,
        "resnet": resnet,
        "text": text,
        "projection": projection,
        "proj_dim": int(proj_dim),
        "pooling": str(_get(model_cfg, "text_encoder", "pooling", default="eos")),
        "temperature": temperature,
        "text_max_length": int(_get(upstream_config, "base", "text_max_length", default=256)),
        "image_size": int(_get(upstream_config, "base", "image_size", default=224)),
        "tokenizer": str(tokenizer),
    }
    values.update(overrides)
    return Architecture(**values)

