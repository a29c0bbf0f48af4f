"""Uni3D architectures and released checkpoints, as data (no torch, no timm imports).

Every number here comes from baaivision/Uni3D (commit 64e03c3):

* ``scripts/inference.sh`` names the five sizes: the timm model of the point transformer
  (``--pc-model``) and its width (``--pc-feat-dim``): tiny ``eva02_tiny_patch14_224`` / 192,
  small ``eva02_small_patch14_224`` / 384, base ``eva02_base_patch14_448`` / 768, large
  ``eva02_large_patch14_448`` / 1024, giant ``eva_giant_patch14_560`` / 1408; for every size
  ``--embed-dim 1024`` (the EVA02-E-14-plus CLIP space), ``--pc-encoder-dim 512``,
  ``--num-group 512``, ``--group-size 64``, ``--npoints 10000``.
* ``models/uni3d.py`` builds the point transformer with ``timm.create_model(pc_model)``, so the
  timm model's *default* pretrained config decides ``num_classes`` (the unused ``head``) and
  ``img_size`` (the unused ``pos_embed``), and those parameters are in the released checkpoints.
  They are pinned here explicitly (``timm_kwargs``) so a later change of timm's default tags
  cannot change the key layout: tiny/small resolve to the ``mim_in22k`` tags (no head, 224 px),
  base/large to ``mim_in22k_ft_in22k_in1k`` (1000 classes, 448 px), giant to
  ``m30m_ft_in22k_in1k`` (1000 classes, 560 px).
* Checkpoints: ``BAAI/Uni3D`` on the Hugging Face Hub, ``modelzoo/uni3d-{b,l,g}/model.pt`` (and
  ``-no-lvis`` variants trained without Objaverse-LVIS), DeepSpeed model states with the
  weights under ``"module"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from textme_sdk.errors import InvalidInputError

__all__ = [
    "DEFAULT_MODEL",
    "HUB_REPO",
    "RELEASED",
    "SIZES",
    "Uni3DArch",
    "arch_from_dict",
    "resolve_model",
]

#: The Hub repository of the released weights.
HUB_REPO = "BAAI/Uni3D"
#: The default model: upstream's flagship (best zero-shot scores in its model zoo table).
DEFAULT_MODEL = "uni3d-g"


@dataclass(frozen=True)
class Uni3DArch:
    """One Uni3D point-encoder architecture (upstream's command-line arguments).

    Attributes:
        pc_model: timm model name of the point transformer (``--pc-model``).
        pc_feat_dim: width of the transformer tokens (``--pc-feat-dim``); must equal the timm
            model's ``embed_dim``.
        embed_dim: output size, the CLIP text space (``--embed-dim``; 1024 for EVA02-E-14-plus).
        pc_encoder_dim: output channels of the PointNet patch encoder (``--pc-encoder-dim``).
        num_group: number of patches (FPS centres) per cloud (``--num-group``).
        group_size: points per patch, the k of the kNN grouping (``--group-size``).
        npoints: points per cloud after preprocessing (``--npoints``).
        timm_kwargs: keyword arguments for ``timm.create_model`` (pinned head / image size, or
            a tiny test configuration: ``embed_dim``, ``depth``, ``num_heads``...).
    """

    pc_model: str
    pc_feat_dim: int
    embed_dim: int = 1024
    pc_encoder_dim: int = 512
    num_group: int = 512
    group_size: int = 64
    npoints: int = 10000
    timm_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("pc_feat_dim", "embed_dim", "pc_encoder_dim", "num_group", "group_size",
                     "npoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"Uni3D arch: {name} must be a positive integer, got "
                                        f"{value!r}")
        if self.group_size > self.npoints or self.num_group > self.npoints:
            raise InvalidInputError(
                f"Uni3D arch: num_group ({self.num_group}) and group_size ({self.group_size}) "
                f"cannot exceed npoints ({self.npoints})"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what a bundle stores)."""
        return asdict(self)


def _size(pc_model: str, width: int, img_size: int, num_classes: int) -> Uni3DArch:
    return Uni3DArch(pc_model, width,
                     timm_kwargs={"img_size": img_size, "num_classes": num_classes})


#: The five sizes of ``scripts/inference.sh``.
SIZES: dict[str, Uni3DArch] = {
    "tiny": _size("eva02_tiny_patch14_224", 192, 224, 0),
    "small": _size("eva02_small_patch14_224", 384, 224, 0),
    "base": _size("eva02_base_patch14_448", 768, 448, 1000),
    "large": _size("eva02_large_patch14_448", 1024, 448, 1000),
    "giant": _size("eva_giant_patch14_560", 1408, 560, 1000),
}

_SHORT = {"ti": "tiny", "s": "small", "b": "base", "l": "large", "g": "giant"}

#: Released checkpoints: model name -> (size, file in ``BAAI/Uni3D``). The upstream README
#: links B, L and g (each with and without LVIS in training); ``uni3d-ti`` / ``uni3d-s`` are
#: mapped the same way but are not linked from the README (loading fails with a clear error
#: if the file is absent).
RELEASED: dict[str, tuple[str, str]] = {}
for _short, _name in _SHORT.items():
    RELEASED[f"uni3d-{_short}"] = (_name, f"modelzoo/uni3d-{_short}/model.pt")
    RELEASED[f"uni3d-{_short}-no-lvis"] = (_name, f"modelzoo/uni3d-{_short}-no-lvis/model.pt")


def arch_from_dict(data: dict[str, Any] | Uni3DArch) -> Uni3DArch:
    """Rebuild an architecture from :meth:`Uni3DArch.to_dict` output (or pass one through)."""
    if isinstance(data, Uni3DArch):
        return data
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"arch must be a dict of Uni3DArch fields, got {type(data).__name__}"
        )
    unknown = set(data) - set(Uni3DArch.__dataclass_fields__)
    if unknown:
        raise InvalidInputError(
            f"unknown Uni3D arch fields {sorted(unknown)}; known: "
            f"{sorted(Uni3DArch.__dataclass_fields__)}"
        )
    return Uni3DArch(**data)


def resolve_model(model: str, arch: dict[str, Any] | Uni3DArch | None = None
                  ) -> tuple[Uni3DArch, str | None]:
    """The architecture a model name means, and its checkpoint file on the Hub (if released).

    Args:
        model: a released name (``"uni3d-g"``, ``"uni3d-b-no-lvis"``...) or a size
            (``"tiny"``, ``"small"``, ``"base"``, ``"large"``, ``"giant"``), which then needs a
            local ``checkpoint`` or ``random_init``.
        arch: field overrides on top of the size's architecture (e.g. a tiny test config), or a
            complete :class:`Uni3DArch`.

    Raises:
        InvalidInputError: unknown name or bad overrides.
    """
    if not isinstance(model, str) or not model:
        raise InvalidInputError(f"model must be a non-empty string, got {model!r}")
    key = model.lower()
    if key in RELEASED:
        size, hub_file = RELEASED[key]
    elif key in SIZES:
        size, hub_file = key, None
    else:
        raise InvalidInputError(
            f"unknown Uni3D model {model!r}; use one of {sorted(RELEASED)} (released weights "
            f"from {HUB_REPO}) or a size {sorted(SIZES)} with checkpoint=... or random_init=True"
        )
    base = SIZES[size]
    if arch is None:
        return base, hub_file
    if isinstance(arch, Uni3DArch):
        return arch, hub_file
    return arch_from_dict({**base.to_dict(), **arch}), hub_file
