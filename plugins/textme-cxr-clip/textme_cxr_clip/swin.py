"""Swin Transformer with the module names of transformers 4.26's ``SwinModel``.

The published ``swint_*`` checkpoints were saved with transformers 4.26.1
(kakaobrain/cxr-clip ``requirements.txt``), whose Swin layout is
``encoder.layers.{i}.blocks.{j}.attention.self.{query,key,value,relative_position_bias_table,
relative_position_index}`` / ``attention.output.dense`` / ``intermediate.dense`` /
``output.dense``. transformers 5 renamed these (``q_proj``, ``o_proj``, ``mlp.fc1``, ...) and
made ``relative_position_index`` non-persistent, so the checkpoint would not load into today's
``SwinModel``. This module re-implements the same computation under the old names:

* patch embedding: ``Conv2d(k = s = patch)`` (input padded to a multiple of the patch), then
  LayerNorm;
* every stage: blocks alternating regular and shifted windows (shift = window // 2); when a
  stage's feature map is not larger than the window (the last 7 x 7 stage of Swin-T at 224
  pixels) the window becomes the feature map and the shift is dropped, as transformers does;
  maps are zero-padded to a multiple of the window after ``layernorm_before``; the shifted-window
  mask adds -100 between regions;
* window attention with a learned relative position bias; patch merging (2 x 2 neighbours ->
  LayerNorm(4C) -> Linear(4C, 2C, bias=False)) between stages; a final LayerNorm.

``forward`` returns ``last_hidden_state`` ``[batch, tokens, hidden]``; CXR-CLIP takes token 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import SwinSpec

__all__ = ["SwinModel"]

_MASK_VALUE = -100.0  # transformers' value for tokens from different shifted regions


def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    flat = coords.flatten(1)  # 2, w*w
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()  # w*w, w*w, 2
    rel[:, :, 0] += window - 1
    rel[:, :, 1] += window - 1
    rel[:, :, 0] *= 2 * window - 1
    return rel.sum(-1)


def _partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * nW, window * window, C]``."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def _reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_partition`: ``[B * nW, window * window, C]`` -> ``[B, H, W, C]``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class _PatchProjection(nn.Module):
    def __init__(self, spec: SwinSpec):
        super().__init__()
        self.patch_size = spec.patch_size
        self.projection = nn.Conv2d(spec.num_channels, spec.embed_dim,
                                    kernel_size=spec.patch_size, stride=spec.patch_size)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        p = self.patch_size
        h, w = pixels.shape[-2:]
        pixels = F.pad(pixels, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.projection(pixels)
        dims = (int(x.shape[2]), int(x.shape[3]))
        return x.flatten(2).transpose(1, 2), dims


class _Embeddings(nn.Module):
    def __init__(self, spec: SwinSpec):
        super().__init__()
        self.patch_embeddings = _PatchProjection(spec)
        self.norm = nn.LayerNorm(spec.embed_dim)  # default eps, as transformers
        self.dropout = nn.Dropout(0.0)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x, dims = self.patch_embeddings(pixels)
        return self.dropout(self.norm(x)), dims


class _WindowSelfAttention(nn.Module):
    def __init__(self, spec: SwinSpec, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"Swin width {dim} is not a multiple of {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.window = spec.window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * self.window - 1) ** 2, heads))
        # Persistent, as in transformers 4.26: the published checkpoints contain it.
        self.register_buffer("relative_position_index", _relative_position_index(self.window))
        self.query = nn.Linear(dim, dim, bias=spec.qkv_bias)
        self.key = nn.Linear(dim, dim, bias=spec.qkv_bias)
        self.value = nn.Linear(dim, dim, bias=spec.qkv_bias)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``[B * nW, N, C]``; ``mask``: ``[nW, N, N]`` additive or ``None``."""
        windows, tokens, dim = x.shape
        if tokens != self.window * self.window:
            raise ValueError(
                f"a Swin stage's feature map is smaller than its {self.window} x {self.window} "
                "window; use a larger image_size (224 for the published checkpoints)"
            )
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)  # 1, heads, N, N
        if mask is not None:
            n_win = mask.shape[0]
            bias = (bias.unsqueeze(1) + mask[None, :, None]).expand(
                windows // n_win, n_win, self.heads, tokens, tokens
            ).reshape(windows, self.heads, tokens, tokens)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return out.transpose(1, 2).reshape(windows, tokens, dim)


class _Dense(nn.Module):
    """A module holding one ``dense`` Linear (the transformers naming of the sublayers)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class _Attention(nn.Module):
    def __init__(self, spec: SwinSpec, dim: int, heads: int):
        super().__init__()
        self.self = _WindowSelfAttention(spec, dim, heads)
        self.output = _Dense(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask))


class _Block(nn.Module):
    def __init__(self, spec: SwinSpec, dim: int, heads: int, shift: int):
        super().__init__()
        self.window = spec.window_size
        self.shift = shift
        self.layernorm_before = nn.LayerNorm(dim, eps=spec.layer_norm_eps)
        self.attention = _Attention(spec, dim, heads)
        self.layernorm_after = nn.LayerNorm(dim, eps=spec.layer_norm_eps)
        self.intermediate = _Dense(dim, int(spec.mlp_ratio * dim))
        self.output = _Dense(int(spec.mlp_ratio * dim), dim)

    @staticmethod
    def _shift_mask(h: int, w: int, window: int, shift: int, like: torch.Tensor) -> torch.Tensor:
        regions = torch.zeros((1, h, w, 1), dtype=like.dtype, device=like.device)
        cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        label = 0
        for hs in cuts:
            for ws in cuts:
                regions[:, hs, ws, :] = label
                label += 1
        ids = _partition(regions, window).squeeze(-1)  # nW, N
        diff = ids.unsqueeze(1) - ids.unsqueeze(2)
        return diff.masked_fill(diff != 0, _MASK_VALUE).masked_fill(diff == 0, 0.0)

    def forward(self, x: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
        h, w = dims
        window, shift = self.window, self.shift
        if min(h, w) <= window:  # the map fits in one window: no partition, no shift
            window, shift = min(h, w), 0
        b, _, c = x.shape
        shortcut = x
        x = self.layernorm_before(x).view(b, h, w, c)
        pad_w, pad_h = (window - w % window) % window, (window - h % window) % window
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        mask = self._shift_mask(hp, wp, window, shift, x) if shift else None
        attended = self.attention(_partition(x, window), mask)
        x = _reverse(attended, window, hp, wp)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :h, :w, :].reshape(b, h * w, c)
        x = shortcut + x
        return x + self.output(F.gelu(self.intermediate(self.layernorm_after(x))))


class _PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
        h, w = dims
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class _Stage(nn.Module):
    def __init__(self, spec: SwinSpec, dim: int, depth: int, heads: int, downsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            _Block(spec, dim, heads, 0 if i % 2 == 0 else spec.window_size // 2)
            for i in range(depth)
        )
        self.downsample = _PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor,
                dims: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        for block in self.blocks:
            x = block(x, dims)
        if self.downsample is None:
            return x, dims
        return self.downsample(x, dims), ((dims[0] + 1) // 2, (dims[1] + 1) // 2)


class _Encoder(nn.Module):
    def __init__(self, spec: SwinSpec):
        super().__init__()
        n = len(spec.depths)
        self.layers = nn.ModuleList(
            _Stage(spec, int(spec.embed_dim * 2 ** i), spec.depths[i], spec.num_heads[i], i < n - 1)
            for i in range(n)
        )

    def forward(self, x: torch.Tensor, dims: tuple[int, int]) -> torch.Tensor:
        for stage in self.layers:
            x, dims = stage(x, dims)
        return x


class SwinModel(nn.Module):
    """Swin Transformer backbone (no pooling parameters), state-dict compatible with
    ``transformers==4.26`` ``SwinModel``.

    Args:
        spec: the sizes; :class:`~textme_cxr_clip.architecture.SwinSpec` defaults are Swin-T.
    """

    def __init__(self, spec: SwinSpec):
        super().__init__()
        if len(spec.depths) != len(spec.num_heads):
            raise ValueError("Swin depths and num_heads must have the same length")
        self.spec = spec
        self.embeddings = _Embeddings(spec)
        self.encoder = _Encoder(spec)
        self.layernorm = nn.LayerNorm(spec.out_dim, eps=spec.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``last_hidden_state`` ``[B, tokens, out_dim]``."""
        x, dims = self.embeddings(pixel_values)
        return self.layernorm(self.encoder(x, dims))
