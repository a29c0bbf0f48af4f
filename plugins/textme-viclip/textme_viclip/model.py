"""ViCLIP (InternVid) in plain torch: a CLIP ViT with joint space-time attention and a CLIP
text transformer, laid out so that the published checkpoints load strictly.

Architecture, as in OpenGVLab/InternVideo ``Data/InternVid/viclip/`` (``viclip.py``,
``viclip_vision.py``, ``viclip_text.py``):

* vision (``vision_encoder.*``): a ``Conv3d`` patch embedding ``conv1`` with kernel
  ``(1, p, p)``, stride ``(1, p, p)`` and no bias; a ``class_embedding``; a spatial
  ``positional_embedding`` ``[(S/p)^2 + 1, width]`` added to every frame; a zero-initialised
  ``temporal_positional_embedding`` ``[1, T, width]`` added to every patch token of frame t
  (its mean over t for a single frame); one class token followed by the ``T * (S/p)^2`` patch
  tokens (ordered patch-major, frame-minor, as upstream); ``ln_pre``; ``transformer.resblocks``
  (pre-norm blocks ``ln_1 -> attn -> ln_2 -> mlp(c_fc, QuickGELU, c_proj)``) over the whole
  sequence jointly; ``ln_post`` on the class token; ``@ proj``.
* text (``text_encoder.*``): ``token_embedding``, ``positional_embedding`` ``[32, width]``,
  causal blocks of the same form, ``ln_final`` (computed in float32), the features at the
  end-of-text token (the largest token id) ``@ text_projection``.
* ``temp``: the learned temperature (logit scale = ``1 / temp``).

Inference always takes upstream's *test* path: upstream ``encode_vision(test=False)`` drops
90% of the patch tokens at random (training-time masking); this port has no masking at all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn

__all__ = [
    "VARIANTS",
    "TextTransformer",
    "ViCLIP",
    "ViCLIPConfig",
    "VisionTransformer",
    "config_for",
]


@dataclass(frozen=True)
class ViCLIPConfig:
    """Sizes of one ViCLIP model.

    Attributes:
        embed_dim: joint embedding size (``proj`` / ``text_projection`` output).
        image_size: frame side length the model was trained on (frames are resized to it).
        patch_size: spatial patch size of ``conv1``.
        num_frames: frames per clip (length of ``temporal_positional_embedding``).
        vision_width, vision_layers, vision_heads: the video transformer.
        text_width, text_layers, text_heads: the text transformer.
        context_length: text tokens (32 for ViCLIP, not CLIP's 77).
        vocab_size: CLIP BPE vocabulary size.
        kernel_size: temporal extent of the ``conv1`` kernel (1 for the released models).
    """

    embed_dim: int = 768
    image_size: int = 224
    patch_size: int = 14
    num_frames: int = 8
    vision_width: int = 1024
    vision_layers: int = 24
    vision_heads: int = 16
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    context_length: int = 32
    vocab_size: int = 49408
    kernel_size: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ViCLIP config field {f.name} must be a positive int, "
                                 f"got {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size "
                             f"{self.patch_size}")
        if self.num_frames % self.kernel_size:
            raise ValueError(f"num_frames {self.num_frames} is not a multiple of kernel_size "
                             f"{self.kernel_size}")
        for width, heads, what in ((self.vision_width, self.vision_heads, "vision"),
                                   (self.text_width, self.text_heads, "text")):
            if width % heads:
                raise ValueError(f"{what}_width {width} is not divisible by {what}_heads {heads}")

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


#: The two released sizes (``clip_joint_l14`` + ``clip_text_l14``, ``clip_joint_b16`` +
#: ``clip_text_b16`` upstream), with ViCLIP's own text context of 32.
VARIANTS: dict[str, ViCLIPConfig] = {
    "ViCLIP-L-14": ViCLIPConfig(),
    "ViCLIP-B-16": ViCLIPConfig(
        embed_dim=512, patch_size=16, vision_width=768, vision_layers=12, vision_heads=12,
        text_width=512, text_layers=12, text_heads=8,
    ),
}


def config_for(model: str, overrides: dict[str, Any] | None = None) -> ViCLIPConfig:
    """The config of a named variant, with optional field overrides (custom / tiny models).

    Raises:
        KeyError: unknown variant name.
        ValueError: unknown or invalid override fields.
    """
    base = VARIANTS[model]
    if not overrides:
        return base
    known = {f.name for f in fields(ViCLIPConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown ViCLIP config fields {unknown}; known: {sorted(known)}")
    return replace(base, **overrides)


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation of OpenAI CLIP (and so of ViCLIP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Float32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back (upstream's text-tower ``LayerNorm``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.layer_norm(x.float(), self.normalized_shape, self.weight.float(),
                                       self.bias.float(), self.eps)
        return out.to(x.dtype)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block; parameter names match upstream's state dicts."""

    def __init__(self, width: int, heads: int, norm: type[nn.LayerNorm] = nn.LayerNorm):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = norm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(width * 4, width)),
        ]))
        self.ln_2 = norm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[batch, tokens, width]``; ``mask``: additive attention mask or ``None``."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` under the name ``resblocks``."""

    def __init__(self, width: int, layers: int, heads: int,
                 norm: type[nn.LayerNorm] = nn.LayerNorm):
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, norm) for _ in range(layers)]
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTransformer(nn.Module):
    """ViCLIP's video tower (upstream ``viclip_vision.VisionTransformer``, inference path)."""

    def __init__(self, cfg: ViCLIPConfig):
        super().__init__()
        width, scale = cfg.vision_width, cfg.vision_width ** -0.5
        kernel = (cfg.kernel_size, cfg.patch_size, cfg.patch_size)
        self.conv1 = nn.Conv3d(3, width, kernel, kernel, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.grid ** 2 + 1, width))
        self.temporal_positional_embedding = nn.Parameter(
            torch.zeros(1, cfg.num_frames // cfg.kernel_size, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, cfg.vision_layers, cfg.vision_heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, cfg.embed_dim))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``video``: ``[B, 3, T, H, W]`` normalised frames -> ``[B, embed_dim]`` (unnormalised).

        No token is ever dropped (upstream's ``masking_prob`` is a training-only option).
        """
        x = self.conv1(video)  # [B, C, T', h, w]
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, c)
        x = x + self.positional_embedding[1:].to(x.dtype)
        temporal = self.temporal_positional_embedding
        if t == 1:  # a single frame (an image) gets the mean temporal embedding, as upstream
            temporal = temporal.mean(1, keepdim=True)
        elif t != temporal.shape[1]:
            raise ValueError(f"this ViCLIP takes {temporal.shape[1]} frames (or 1), got {t}")
        x = x + temporal.to(x.dtype).unsqueeze(2)  # [1, T, 1, C] over every patch of frame t
        x = x.transpose(1, 2).reshape(b, h * w * t, c)  # patch-major, frame-minor, as upstream
        cls = (self.class_embedding + self.positional_embedding[0]).to(x.dtype)
        x = torch.cat([cls.expand(b, 1, c), x], dim=1)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj.to(x.dtype)


class TextTransformer(nn.Module):
    """ViCLIP's text tower (upstream ``viclip_text.CLIP_TEXT``): causal, EOT pooling."""

    def __init__(self, cfg: ViCLIPConfig):
        super().__init__()
        width = cfg.text_width
        self.context_length = cfg.context_length
        self.token_embedding = nn.Embedding(cfg.vocab_size, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(cfg.context_length, width))
        self.transformer = Transformer(width, cfg.text_layers, cfg.text_heads, Float32LayerNorm)
        self.ln_final = Float32LayerNorm(width)
        self.text_projection = nn.Parameter(width ** -0.5 * torch.randn(width, cfg.embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def causal_mask(self, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Additive mask: ``-inf`` above the diagonal."""
        return torch.full((n, n), float("-inf"), device=device, dtype=dtype).triu_(1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens``: ``[B, context_length]`` ids -> ``[B, embed_dim]`` (unnormalised)."""
        if tokens.shape[-1] != self.context_length:
            raise ValueError(f"expected {self.context_length} tokens per text, "
                             f"got {tokens.shape[-1]}")
        x = self.token_embedding(tokens) + self.positional_embedding.to(
            self.token_embedding.weight.dtype)
        x = self.transformer(x, self.causal_mask(x.shape[1], x.device, x.dtype))
        x = self.ln_final(x)
        eot = tokens.argmax(dim=-1)  # the end-of-text token has the largest id
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection


class ViCLIP(nn.Module):
    """The full model; ``state_dict()`` keys equal those under ``model`` in the released
    ``ViClip-InternVid-10M-FLT.pth`` (``vision_encoder.*``, ``text_encoder.*``, ``temp``)."""

    def __init__(self, cfg: ViCLIPConfig):
        super().__init__()
        self.config = cfg
        self.vision_encoder = VisionTransformer(cfg)
        self.text_encoder = TextTransformer(cfg)
        self.temp = nn.Parameter(torch.tensor(1 / 100.0))

    @property
    def logit_scale(self) -> torch.Tensor:
        """``1 / temp`` (100 at initialisation)."""
        return 1.0 / self.temp

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` normalised frames (upstream's layout) -> ``[B, embed_dim]``."""
        if video.ndim != 5:
            raise ValueError(f"expected [B, T, 3, H, W] frames, got shape {tuple(video.shape)}")
        return self.vision_encoder(video.permute(0, 2, 1, 3, 4))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, context_length]`` token ids -> ``[B, embed_dim]``."""
        return self.text_encoder(tokens)
