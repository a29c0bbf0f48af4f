"""Reading checkpoints safely (safetensors, or ``torch.load(weights_only=True)``) and strictly.

Uni3D's released ``model.pt`` files are DeepSpeed model states: a dict whose ``"module"`` entry
holds the ``Uni3D`` state dict (keys possibly prefixed ``module.`` when saved from a wrapped
model). open_clip checkpoints are plain state dicts (or ``{"state_dict": ...}``), possibly with
``module.`` prefixes too. Nothing here ever unpickles arbitrary objects.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch

from textme_sdk.checkpoints import load_strict as core_load_strict

from .errors import CheckpointError

__all__ = ["WRAPPER_KEYS", "load_strict", "read_state_dict", "strip_prefix"]

#: Keys under which training frameworks nest the weights, tried in this order.
WRAPPER_KEYS = ("module", "state_dict", "model")

_CONVERT_HINT = (
    "If you trust the file, convert it once to safetensors in a separate environment, e.g. "
    "`sd = torch.load(path, weights_only=False)['module']; "
    "safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, "
    "'model.safetensors')`, "
    "and pass the .safetensors file instead"
)


def _torch_load(path: str) -> Any:
    """``torch.load`` restricted to tensors and plain containers; memory-mapped when possible."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
        if "mmap" not in str(exc) and "zip" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def strip_prefix(state: Mapping[str, torch.Tensor],
                 prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key when *all* keys carry it (as DDP / DeepSpeed save)."""
    keys = list(state)
    if keys and all(k.startswith(prefix) for k in keys):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def read_state_dict(path: str | os.PathLike,
                    keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """Read the weights of a checkpoint file as a flat ``{name: tensor}`` dict.

    Args:
        path: a ``.safetensors`` file, or a torch file (``.pt``, ``.pth``, ``.bin``...) holding
            a state dict, possibly nested under ``module`` / ``state_dict`` / ``model``.
        keep: select keys (after unwrapping and ``module.`` stripping); for safetensors only
            the selected tensors are read.

    Raises:
        CheckpointError: missing, unreadable or unsafe file, or no tensors in it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path!r}; check the path")
    try:
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, framework="pt", device="cpu") as f:
                names = strip_prefix({k: k for k in f.keys()})  # noqa: SIM118 (not a dict)
                return {k: f.get_tensor(stored) for k, stored in names.items()
                        if keep is None or keep(k)}
        obj = _torch_load(path)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:  # not a pickle of tensors at all
            raise CheckpointError(
                f"could not read checkpoint {path!r}: the file is corrupt, truncated, or not a "
                "torch / safetensors checkpoint - download it again"
            ) from exc
        raise CheckpointError(
            f"{path!r} holds Python objects other than tensors ({found.group(1)}); checkpoints "
            f"are only read with torch.load(weights_only=True). {_CONVERT_HINT}"
        ) from exc
    except Exception as exc:  # corrupt / truncated / not a checkpoint
        raise CheckpointError(
            f"could not read checkpoint {path!r}: {type(exc).__name__}: {exc}. The file is "
            "corrupt, truncated, or not a torch / safetensors checkpoint - download it again"
        ) from exc
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{path!r} does not contain a state dict (found {type(obj).__name__})"
        )
    state = {k: v for k, v in strip_prefix(obj).items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"{path!r} contains no tensors")
    return {k: v for k, v in state.items() if keep is None or keep(k)}


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error naming the differences.

    Raises:
        CheckpointError: missing or unexpected keys, or shape mismatches.
    """
    core_load_strict(module, state, what, error=CheckpointError,
                     hint="Pick the model size the checkpoint was trained with (weights are never "
                          "loaded partially)")
