"""Helpers for plugins that load published checkpoints: strict loading with a useful error.

A port is only faithful if the published weights fit it exactly, so plugins never load
partially. :func:`load_strict` copies a state dict into a module with ``strict=True`` after
checking names and shapes itself, and raises the plugin's own error type with every difference
counted and a few named, plus the plugin's hint on what to do. Random weights are never a
silent fallback: a plugin builds them only when asked (``random_init=True``, for tests and
architecture checks), reports :data:`RANDOM_WEIGHTS` as their licence and logs
:func:`warn_random_weights` when it builds them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from .errors import TextMEError

__all__ = ["RANDOM_WEIGHTS", "state_dict_mismatch", "load_strict", "warn_random_weights"]

logger = logging.getLogger(__name__)

#: The ``license`` of an encoder built with random weights (``random_init=True``).
RANDOM_WEIGHTS = "random weights"


def warn_random_weights(plugin: str, model: str) -> None:
    """Log a warning that ``plugin`` builds ``model`` with random weights (``random_init=True``).

    Embeddings of random weights carry no meaning; the warning keeps a test setting from
    passing unnoticed into real use.
    """
    logger.warning("%s: %s uses RANDOM weights (random_init=True); its embeddings carry no "
                   "meaning - load published weights for real use", plugin, model)


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor],
                        examples: int = 3) -> str | None:
    """Describe how ``state`` differs from ``expected`` in names and shapes (``None`` if it fits).

    Example: ``"2 missing (e.g. ['a.weight', 'a.bias']); 1 with other shapes (e.g. b.weight:
    checkpoint (4, 3) vs model (4, 2))"``.
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state)
                    if tuple(expected[k].shape) != tuple(state[k].shape))
    if not (missing or unexpected or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:examples]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:examples]})")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} with other shapes (e.g. {k}: checkpoint "
                     f"{tuple(state[k].shape)} vs model {tuple(expected[k].shape)})")
    return "; ".join(parts)


def load_strict(
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    what: str,
    hint: str = "",
    error: type[Exception] = TextMEError,
    assign: bool = False,
    examples: int = 3,
) -> None:
    """``module.load_state_dict(state, strict=True)``, raising ``error`` that names the differences.

    Args:
        module: the architecture to fill.
        state: the checkpoint's tensors, keys already mapped to the module's names.
        what: what is being loaded, for the message (e.g. ``"uni3d-b model.pt"``).
        hint: what the user should do about a mismatch (appended to the message).
        error: the exception type to raise (a plugin's own load error).
        assign: pass ``assign=True`` (keeps the checkpoint's tensors; fills a meta-device model).
        examples: how many names to show per kind of difference.

    Raises:
        error: missing or unexpected keys, or shapes that differ. Nothing is loaded then.
    """
    problem = state_dict_mismatch(module.state_dict(), state, examples)
    if problem is not None:
        raise error(f"{what} does not match the architecture: {problem}." + (f" {hint}" if hint else ""))
    module.load_state_dict(state, strict=True, assign=assign)
