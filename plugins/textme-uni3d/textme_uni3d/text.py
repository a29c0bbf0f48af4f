"""Uni3D's text branch: the text tower of an open_clip model (default ``EVA02-E-14-plus``).

Uni3D aligns points to the space of open_clip ``EVA02-E-14-plus`` / ``laion2b_s9b_b144k``
(``scripts/inference.sh``; ``main.py`` encodes class prompts with ``clip_model.encode_text``,
CLIP BPE tokens, context 77). That checkpoint holds a ~4.4B-parameter image tower that text
encoding never uses, and building it alone takes minutes; so only the text tower is built
(open_clip's own ``TextTransformer`` from the model config) and only its weights are read from
the checkpoint (``text.*`` for custom-text models such as EVA02-E-14-plus, or the root
``token_embedding`` / ``positional_embedding`` / ``transformer`` / ``ln_final`` /
``text_projection`` of classic CLIP checkpoints), strictly. The result equals
``open_clip.create_model(name, pretrained).encode_text`` (tested on a tiny config).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .checkpoint import load_strict, read_state_dict
from .errors import Uni3DLoadError

__all__ = [
    "CLIP_TEXT_PREFIXES",
    "DEFAULT_CLIP_MODEL",
    "DEFAULT_CLIP_PRETRAINED",
    "build_text_tower",
    "load_text_tower",
    "resolve_clip_weights",
    "text_keys",
]

DEFAULT_CLIP_MODEL = "EVA02-E-14-plus"
DEFAULT_CLIP_PRETRAINED = "laion2b_s9b_b144k"
#: Root-level names of a classic (non custom-text) open_clip CLIP's text tower.
CLIP_TEXT_PREFIXES = ("text_projection", "positional_embedding", "token_embedding",
                      "transformer.", "ln_final.")


def _model_config(clip_model: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_model_config(clip_model)
    if cfg is None:
        raise Uni3DLoadError(
            f"unknown open_clip model {clip_model!r}; see open_clip.list_models() (custom "
            "configs can be registered with open_clip.add_model_config)"
        )
    if cfg.get("text_cfg", {}).get("hf_model_name"):
        raise Uni3DLoadError(
            f"open_clip model {clip_model!r} uses a Hugging Face text model; the uni3d plugin "
            "supports open_clip's own text transformer (as EVA02-E-14-plus has)"
        )
    return cfg


def build_text_tower(clip_model: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """open_clip's text tower of ``clip_model`` with random weights (``"meta"``: no memory)."""
    from open_clip.model import _build_text_tower  # the factory open_clip's CLIP classes use

    cfg = _model_config(clip_model)
    with torch.device(device):
        tower = _build_text_tower(cfg["embed_dim"], cfg["text_cfg"],
                                  quick_gelu=cfg.get("quick_gelu", False))
    return tower.eval()


def text_keys(state_keys: list[str]) -> tuple[str, bool]:
    """Which layout a checkpoint uses: (``"text."``, True) or (``""``, False) for root keys."""
    if any(k.startswith("text.") for k in state_keys):
        return "text.", True
    return "", False


def _is_root_text_key(key: str) -> bool:
    return key.startswith(CLIP_TEXT_PREFIXES)


def resolve_clip_weights(clip_model: str, clip_pretrained: str,
                         cache_dir: str | None = None) -> str:
    """A local file for ``clip_pretrained``: an existing path, or an open_clip pretrained tag
    downloaded (or found in the cache) through open_clip's own resolver.

    Raises:
        Uni3DLoadError: unknown tag, or the download failed (offline and not cached).
    """
    path = os.path.expanduser(clip_pretrained)
    if os.path.isfile(path):
        return path
    import open_clip

    cfg = open_clip.get_pretrained_cfg(clip_model, clip_pretrained)
    if not cfg:
        raise Uni3DLoadError(
            f"{clip_pretrained!r} is neither a file nor a pretrained tag of open_clip model "
            f"{clip_model!r} (tags: {open_clip.list_pretrained_tags_by_model(clip_model)})"
        )
    try:
        found = open_clip.download_pretrained(cfg, cache_dir=cache_dir)
    except Exception as exc:  # huggingface_hub raises several types offline
        raise Uni3DLoadError(
            f"could not get the weights of open_clip {clip_model}:{clip_pretrained} "
            f"({type(exc).__name__}: {exc}). When offline they must already be in the Hugging "
            "Face cache; or pass clip_pretrained=<local open_clip checkpoint file>"
        ) from exc
    if not found or not os.path.isfile(found):
        raise Uni3DLoadError(f"open_clip returned no file for {clip_model}:{clip_pretrained}")
    return found


def load_text_tower(clip_model: str, weights: str) -> torch.nn.Module:
    """Build the text tower of ``clip_model`` and load it strictly from the file ``weights``.

    Raises:
        Uni3DLoadError / CheckpointError: unknown model, unreadable file, or keys that do not
            match (e.g. the checkpoint of another architecture).
    """
    tower = build_text_tower(clip_model, "cpu")
    expected = set(tower.state_dict())

    def wanted(key: str) -> bool:
        return key.startswith("text.") or _is_root_text_key(key)

    state = read_state_dict(weights, keep=wanted)
    prefix, custom = text_keys(list(state))
    if custom:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    else:
        state = {k: v for k, v in state.items() if _is_root_text_key(k)}
    if "attn_mask" not in expected:  # a buffer that old open_clip versions saved
        state.pop("attn_mask", None)
    load_strict(tower, state, f"the text tower in {weights!r} ({clip_model})")
    return tower
