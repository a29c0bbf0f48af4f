"""The CXR-CLIP network with kakaobrain/cxr-clip's module names, so its checkpoints load strictly.

Upstream ``CXRClip`` (``cxrclip/model/clip.py``) holds::

    image_encoder     ResNet50 -> .resnet (torchvision resnet50, fc deleted)
                      or HuggingfaceImageEncoder -> .image_encoder (transformers SwinModel)
    text_encoder      HuggingfaceTextEncoder -> .text_encoder (transformers BertModel, with pooler)
    image_projection  LinearProjectionHead -> .projection  (or MLPProjectionHead)
    text_projection   idem
    logit_scale       nn.Parameter, log(1 / temperature)

so the state-dict keys are ``image_encoder.resnet.conv1.weight``,
``image_encoder.image_encoder.embeddings.patch_embeddings.projection.weight``,
``text_encoder.text_encoder.encoder.layer.0.attention.self.query.weight``,
``image_projection.projection.weight`` and so on. This module rebuilds the same tree:
torchvision's ResNet for ``resnet``, :mod:`textme_cxr_clip.swin` (transformers 4.26 names) for
``swin``, transformers' ``BertModel`` for the text.

Global features, as upstream ``encode_image`` / ``encode_text``:

* ResNet: global average pool of ``layer4`` (2048-d);
* Swin: ``last_hidden_state[:, 0]`` - the first of the 49 final patch tokens (upstream's comment
  calls it "[CLS] token", but Swin has none; it is *not* the mean-pooled ``pooler_output``);
* text: the hidden state at the ``[SEP]`` token, ``attention_mask.sum(-1) - 1`` (``pooling:
  eos``), or ``[CLS]`` (``bos``) or the masked mean (``mean``).

Embeddings are the projections of those features (L2-normalised by textme-sdk).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from textme_sdk.checkpoints import load_strict

from .architecture import Architecture, BertSpec, ResNetSpec, SwinSpec
from .errors import CheckpointMismatchError
from .swin import SwinModel

__all__ = [
    "STALE_KEYS",
    "CXRClipModel",
    "CheckpointMismatchError",
    "build_model",
    "load_weights",
]

#: Buffers that older transformers saved and today's recompute: ignored when present.
#: ``position_ids`` became non-persistent in transformers 4.31 (cxr-clip used 4.26.1).
STALE_KEYS = ("text_encoder.text_encoder.embeddings.position_ids",)
_REL_INDEX = ".attention.self.relative_position_index"


class ResNet50Encoder(nn.Module):
    """Upstream ``ResNet50``: torchvision's bottleneck ResNet without ``fc`` (2048-d output).

    Upstream converts it to ``SyncBatchNorm`` for training; the parameters and buffers are the
    same as ``BatchNorm2d``'s and both use the running statistics in eval mode.
    """

    def __init__(self, spec: ResNetSpec):
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        self.resnet = ResNet(Bottleneck, list(spec.layers), width_per_group=spec.width_per_group)
        del self.resnet.fc
        self.out_dim = spec.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.layer4(r.layer3(r.layer2(r.layer1(x))))
        return torch.flatten(r.avgpool(x), 1)


class SwinEncoder(nn.Module):
    """Upstream ``HuggingfaceImageEncoder(model_type="swin")``: returns ``last_hidden_state``."""

    def __init__(self, spec: SwinSpec):
        super().__init__()
        self.image_encoder = SwinModel(spec)
        self.out_dim = spec.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(x)


class BertEncoder(nn.Module):
    """Upstream ``HuggingfaceTextEncoder``: ``AutoModel`` of a BERT (with its pooler, unused)."""

    def __init__(self, spec: BertSpec):
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(**vars(spec))
        self.text_encoder = BertModel(config)  # add_pooling_layer=True, as AutoModel
        self.out_dim = spec.hidden_size

    def forward(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.text_encoder(**tokens).last_hidden_state


class LinearProjectionHead(nn.Module):
    """Upstream ``LinearProjectionHead``: one Linear with bias."""

    def __init__(self, embedding_dim: int, projection_dim: int):
        super().__init__()
        self.projection = nn.Linear(embedding_dim, projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)


class MLPProjectionHead(nn.Module):
    """Upstream ``MLPProjectionHead``: ``LN(fc(GELU(p)) + p)`` with ``p = projection(x)``."""

    def __init__(self, embedding_dim: int, projection_dim: int, dropout: float = 0.1):
        super().__init__()
        self.projection = nn.Linear(embedding_dim, projection_dim)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(projection_dim, projection_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(projection_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.projection(x)
        x = self.dropout(self.fc(self.gelu(projected)))
        return self.layer_norm(x + projected)


def _projection(kind: str, d_in: int, d_out: int) -> nn.Module:
    if kind == "linear":
        return LinearProjectionHead(d_in, d_out)
    if kind == "mlp":
        return MLPProjectionHead(d_in, d_out)
    return nn.Identity()


class CXRClipModel(nn.Module):
    """CXR-CLIP: image encoder, BioClinicalBERT text encoder and projection heads.

    Args:
        arch: the architecture (see :data:`textme_cxr_clip.architecture.PRESETS`).
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        self.arch = arch
        if arch.image_encoder == "resnet":
            self.image_encoder: nn.Module = ResNet50Encoder(arch.resnet)  # type: ignore[arg-type]
        else:
            self.image_encoder = SwinEncoder(arch.swin)  # type: ignore[arg-type]
        self.text_encoder = BertEncoder(arch.text)
        self.image_projection = _projection(arch.projection, arch.image_dim, arch.proj_dim)
        self.text_projection = _projection(arch.projection, arch.text.hidden_size, arch.proj_dim)
        if arch.temperature:
            self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / arch.temperature))

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Global image feature: ResNet pooled output, or Swin ``last_hidden_state[:, 0]``."""
        features = self.image_encoder(pixels)
        return features if self.arch.image_encoder == "resnet" else features[:, 0]

    def encode_text(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Pooled text feature (``eos``: the ``[SEP]`` token of right-padded input)."""
        hidden = self.text_encoder(tokens)
        mask = tokens["attention_mask"]
        if self.arch.pooling == "eos":
            last = mask.sum(dim=-1) - 1
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        if self.arch.pooling == "bos":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def embed_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Projected (not yet normalised) image embeddings ``[B, embedding_dim]``."""
        return self.image_projection(self.encode_image(pixels))

    def embed_text(self, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Projected (not yet normalised) text embeddings ``[B, embedding_dim]``."""
        return self.text_projection(self.encode_text(tokens))


@contextmanager
def _seeded(seed: int | None):
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_model(arch: Architecture, device: str | torch.device = "cpu",
                seed: int | None = None) -> CXRClipModel:
    """Build the network (random weights) on ``device``; ``"meta"`` allocates nothing.

    Args:
        arch: the architecture.
        device: where to create the parameters.
        seed: make the random initialisation reproducible (without touching the global RNG).
    """
    context = torch.device(device) if str(device) == "meta" else nullcontext()
    with _seeded(seed), context:
        model = CXRClipModel(arch)
    if str(device) != "meta":
        model = model.to(device)
    return model.eval()


def load_weights(model: CXRClipModel, state: Mapping[str, torch.Tensor]) -> None:
    """Load an upstream state dict **strictly** into ``model``.

    Tolerated, and only these: the stale BERT ``position_ids`` buffer (dropped), and Swin
    ``relative_position_index`` buffers missing (recomputed) - when present they must equal the
    recomputed ones. Anything else missing, unexpected or mis-shaped is an error.

    Raises:
        CheckpointMismatchError: the state dict does not fit.
    """
    expected = model.state_dict()
    state = {k: v for k, v in state.items() if k not in STALE_KEYS}
    for key in [k for k in expected if k.endswith(_REL_INDEX)]:
        if key not in state:
            state[key] = expected[key]
        elif state[key].is_meta or expected[key].is_meta:
            continue  # a shape-only check
        elif not torch.equal(state[key].to(expected[key].device).long(), expected[key].long()):
            raise CheckpointMismatchError(
                f"{key} differs from the index of a {model.arch.swin.window_size}-wide window; "
                "the checkpoint's Swin uses another window size"
            )
    load_strict(model, state, "the CXR-CLIP weights", error=CheckpointMismatchError,
                hint="Use the checkpoint's own architecture (architecture_from_state) or the "
                     "matching published model name")

