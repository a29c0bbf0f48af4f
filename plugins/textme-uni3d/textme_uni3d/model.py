"""The Uni3D point encoder in plain torch (+ timm's EVA blocks), parameter names as upstream.

A port of ``models/point_encoder.py`` and ``models/uni3d.py`` of baaivision/Uni3D, written
from their behaviour:

1. **Grouping** (:class:`Group`): farthest-point sampling picks ``num_group`` centres, each
   centre takes its ``group_size`` nearest points (kNN), the patch is re-centred on its centre
   and the rgb of its points is appended: ``[B, G, K, 6]``.
2. **Patch embedding** (:class:`Encoder`): a mini-PointNet, ``first_conv`` 6 -> 128 (BN, ReLU)
   -> 256, max-pool, concatenate the pooled feature to every point -> 512, ``second_conv``
   512 -> 512 (BN, ReLU) -> ``pc_encoder_dim``, max-pool: one token per patch.
3. **Transformer** (:class:`PointcloudEncoder`): ``encoder2trans`` to the transformer width, a
   ``cls_token``, positions from an MLP of the patch centres (3 -> 128 -> width, GELU) plus
   ``cls_pos``, then the blocks of a timm EVA model called as ``blk(x)`` (no RoPE; timm's own
   patch / position embeddings and head exist only so the checkpoints load strictly).
4. **Head**: ``visual.norm`` of the CLS token -> ``visual.fc_norm`` -> ``trans2embed``.

Upstream's FPS is the compiled ``pointnet2_ops`` CUDA kernel; :func:`farthest_point_sample`
reproduces it in torch (CPU and CUDA): first index 0, squared distances in float32, and the
kernel's quirk of never picking points within ``sqrt(1e-3)`` of the origin. It returns the
kernel's indices whenever each step's farthest point is unique; exact ties (duplicated or grid
points) are broken differently, as its docstring states.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .arch import Uni3DArch

__all__ = [
    "FPS_MIN_SQUARED_NORM",
    "Encoder",
    "Group",
    "PointcloudEncoder",
    "Uni3D",
    "build_uni3d",
    "farthest_point_sample",
    "knn_point",
    "square_distance",
]

#: pointnet2_ops' FPS kernel skips points whose squared norm is <= this (never selects them).
FPS_MIN_SQUARED_NORM = 1e-3


def farthest_point_sample(xyz: torch.Tensor, npoint: int,
                          min_squared_norm: float | None = FPS_MIN_SQUARED_NORM) -> torch.Tensor:
    """Indices of ``npoint`` farthest-point samples per cloud, selected as pointnet2_ops'
    ``furthest_point_sample`` CUDA kernel selects them, except on ties (below).

    Vectorised over the batch and the points; the ``npoint`` steps are sequential by nature.
    Works on any device. The first sample is index 0; each next sample is a point whose float32
    squared distance to the nearest already-chosen sample is largest; points with squared norm
    ``<= 1e-3`` are never chosen (except index 0), as in the kernel.

    Equality with the kernel. The indices are the kernel's whenever, at every step, a single
    point has the largest distance (random real-valued clouds). When several points share it
    exactly (duplicated points, grids, symmetric shapes) the two pick different ones:

    * here: the **lowest index** among them;
    * the kernel: the winner of its block reduction. With ``T = min(2**floor(log2(N)), 512)``
      threads, thread ``t`` scans points ``t, t + T, t + 2T, ...`` keeping the first of its
      maxima, then a pairwise tree reduction keeps the lower slot on ties; so among the tied
      threads the one whose id has the smallest bit-reversed value wins (thread 0 first, even
      ids before odd ones), which is generally not the lowest point index.

    Both choices are equally far, so both sequences are valid farthest-point samplings. If the
    tied points are copies of one position the chosen coordinates are the same (and so are
    :class:`Group`'s centres and patches); if they are different positions (a grid) the later
    samples may take another, equally valid, path. The kernel is built with nvcc's default
    ``--fmad=true``, so its distances may also be rounded differently in the last bit, and two
    candidates within one rounding of each other may then be ordered differently. Once every
    distinct eligible position has been chosen all remaining distances are 0, and the remaining
    samples repeat one point: the lowest eligible index here, index 0 (when eligible) in the
    kernel too; indices repeat whenever ``npoint`` exceeds the number of distinct positions.

    Args:
        xyz: ``[B, N, 3]`` coordinates.
        npoint: samples per cloud, ``1 <= npoint <= N``.
        min_squared_norm: points with a squared norm ``<=`` this are never chosen (the
            kernel's rule); ``None`` considers every point (plain FPS, used for resampling).

    Returns:
        ``[B, npoint]`` int64 indices into ``N``.
    """
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise ValueError(f"xyz must be [B, N, 3], got {tuple(xyz.shape)}")
    batch, n, _ = xyz.shape
    if not 1 <= npoint <= n:
        raise ValueError(f"npoint must be in [1, {n}], got {npoint}")
    pts = xyz.detach().float()
    x, y, z = pts.unbind(-1)
    if min_squared_norm is None:
        valid = torch.ones_like(x, dtype=torch.bool)
    else:
        valid = x * x + y * y + z * z > min_squared_norm
    # Skipped points start (and stay, since distances are >= 0) below every valid distance.
    nearest = torch.where(valid, torch.full_like(x, 1e10), torch.full_like(x, -1.0))
    out = torch.zeros(batch, npoint, dtype=torch.long, device=xyz.device)
    rows = torch.arange(batch, device=xyz.device)
    last = torch.zeros(batch, dtype=torch.long, device=xyz.device)
    for j in range(1, npoint):
        cx, cy, cz = pts[rows, last].unbind(-1)
        dx, dy, dz = x - cx[:, None], y - cy[:, None], z - cz[:, None]
        nearest = torch.minimum(nearest, dx * dx + dy * dy + dz * dz)
        last = nearest.argmax(dim=-1)
        out[:, j] = last
    return out


def square_distance(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Squared distances ``[B, S, M]`` between ``src [B, S, C]`` and ``dst [B, M, C]``.

    Uses upstream's expanded form ``|s|^2 + |d|^2 - 2 s.d`` (one matmul), so kNN ties resolve
    exactly as in Uni3D.
    """
    dist = -2.0 * torch.matmul(src, dst.transpose(1, 2))
    dist = dist + src.pow(2).sum(-1)[:, :, None]
    return dist + dst.pow(2).sum(-1)[:, None, :]


def knn_point(nsample: int, xyz: torch.Tensor, new_xyz: torch.Tensor) -> torch.Tensor:
    """Indices ``[B, S, nsample]`` of the ``nsample`` points of ``xyz`` nearest each query.

    Unsorted within a group (``topk(sorted=False)``, as upstream); the patch encoder is
    permutation-invariant, so only the set matters.
    """
    return torch.topk(square_distance(new_xyz, xyz), nsample, dim=-1, largest=False,
                      sorted=False).indices


class Group(nn.Module):
    """FPS centres + kNN patches, re-centred, rgb appended (upstream ``Group``)."""

    def __init__(self, num_group: int, group_size: int):
        super().__init__()
        self.num_group = num_group
        self.group_size = group_size

    def forward(self, xyz: torch.Tensor, color: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split clouds into patches.

        Args:
            xyz: ``[B, N, 3]`` coordinates.
            color: ``[B, N, 3]`` rgb.

        Returns:
            ``(neighborhood [B, G, K, 3], center [B, G, 3], features [B, G, K, 6])`` where the
            neighbourhoods are relative to their centre and ``features`` appends the rgb.
        """
        rows = torch.arange(xyz.shape[0], device=xyz.device)
        center = xyz[rows[:, None], farthest_point_sample(xyz, self.num_group)]
        idx = knn_point(self.group_size, xyz, center)
        gather = rows[:, None, None]
        neighborhood = xyz[gather, idx] - center[:, :, None, :]
        features = torch.cat((neighborhood, color[gather, idx]), dim=-1)
        return neighborhood, center, features


class Encoder(nn.Module):
    """The mini-PointNet patch encoder (upstream ``Encoder``; widths 128/256/512 fixed)."""

    def __init__(self, encoder_channel: int):
        super().__init__()
        self.encoder_channel = encoder_channel
        self.first_conv = nn.Sequential(
            nn.Conv1d(6, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Conv1d(128, 256, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
            nn.Conv1d(512, encoder_channel, 1),
        )

    def forward(self, point_groups: torch.Tensor) -> torch.Tensor:
        """``[B, G, K, 6]`` patches -> ``[B, G, encoder_channel]`` tokens."""
        b, g, k, c = point_groups.shape
        feature = self.first_conv(point_groups.reshape(b * g, k, c).transpose(1, 2))
        pooled = feature.max(dim=2, keepdim=True).values
        feature = self.second_conv(torch.cat((pooled.expand(-1, -1, k), feature), dim=1))
        return feature.max(dim=2).values.reshape(b, g, self.encoder_channel)


class PointcloudEncoder(nn.Module):
    """Patches -> EVA transformer -> CLIP-space embedding (upstream ``PointcloudEncoder``).

    Args:
        point_transformer: the timm EVA model whose ``blocks``, ``pos_drop``, ``norm`` and
            ``fc_norm`` are used (its patch embedding, position embedding and head are not).
        arch: the sizes.
    """

    def __init__(self, point_transformer: nn.Module, arch: Uni3DArch):
        super().__init__()
        self.trans_dim = arch.pc_feat_dim
        self.embed_dim = arch.embed_dim
        self.group_size = arch.group_size
        self.num_group = arch.num_group
        self.encoder_dim = arch.pc_encoder_dim
        self.group_divider = Group(arch.num_group, arch.group_size)
        self.encoder = Encoder(arch.pc_encoder_dim)
        self.encoder2trans = nn.Linear(arch.pc_encoder_dim, arch.pc_feat_dim)
        self.trans2embed = nn.Linear(arch.pc_feat_dim, arch.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, arch.pc_feat_dim))
        self.cls_pos = nn.Parameter(torch.randn(1, 1, arch.pc_feat_dim))
        self.pos_embed = nn.Sequential(
            nn.Linear(3, 128), nn.GELU(), nn.Linear(128, arch.pc_feat_dim)
        )
        # Upstream's PatchDropout ignores eval mode; at inference its rate is 0, i.e. identity.
        self.patch_dropout = nn.Identity()
        self.visual = point_transformer

    def forward(self, pts: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
        """``[B, N, 3]`` xyz + ``[B, N, 3]`` rgb -> ``[B, embed_dim]`` (not normalised).

        Grouping runs in float32 whatever the weights' dtype (FPS / kNN need the precision).
        """
        dtype = self.cls_token.dtype
        _, center, features = self.group_divider(pts.float(), colors.float())
        tokens = self.encoder2trans(self.encoder(features.to(dtype)))
        batch = tokens.shape[0]
        x = torch.cat((self.cls_token.expand(batch, -1, -1), tokens), dim=1)
        pos = torch.cat((self.cls_pos.expand(batch, -1, -1), self.pos_embed(center.to(dtype))),
                        dim=1)
        x = self.visual.pos_drop(self.patch_dropout(x + pos))
        for blk in self.visual.blocks:
            x = blk(x)
        x = self.visual.fc_norm(self.visual.norm(x[:, 0, :]))
        return self.trans2embed(x)


class Uni3D(nn.Module):
    """The checkpoint root (upstream ``Uni3D``): ``logit_scale`` + ``point_encoder``."""

    def __init__(self, point_encoder: PointcloudEncoder):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.point_encoder = point_encoder

    def encode_pc(self, pc: torch.Tensor) -> torch.Tensor:
        """``[B, N, 6]`` (xyz + rgb) -> ``[B, embed_dim]`` (not normalised)."""
        if pc.ndim != 3 or pc.shape[-1] != 6:
            raise ValueError(f"point clouds must be [B, N, 6] (xyz + rgb), got {tuple(pc.shape)}")
        return self.point_encoder(pc[:, :, :3].contiguous(), pc[:, :, 3:].contiguous())

    def forward(self, pc: torch.Tensor) -> torch.Tensor:
        return self.encode_pc(pc)


def build_uni3d(arch: Uni3DArch, device: str | torch.device = "cpu") -> Uni3D:
    """Build the architecture with random weights (``device="meta"``: no memory).

    The point transformer is ``timm.create_model(arch.pc_model, pretrained=False,
    **arch.timm_kwargs)``, as upstream (drop-path 0, i.e. inference).

    Raises:
        ValueError: the timm model's width differs from ``arch.pc_feat_dim``.
    """
    import timm

    kwargs: dict[str, Any] = {"drop_path_rate": 0.0, **arch.timm_kwargs}
    with torch.device(device):
        transformer = timm.create_model(arch.pc_model, pretrained=False, **kwargs)
        width = int(getattr(transformer, "embed_dim", -1))
        if width != arch.pc_feat_dim:
            raise ValueError(
                f"timm model {arch.pc_model!r} has width {width}, but pc_feat_dim is "
                f"{arch.pc_feat_dim}; they must agree (upstream passes both)"
            )
        model = Uni3D(PointcloudEncoder(transformer, arch))
    return model.eval()
