"""Built-in training losses, registered by name through the ``register_losses`` hook.

* ``hard_negative_infonce`` - the paper's Eq. 4 (the default of :class:`~textme_sdk.TrainConfig`).
* ``infonce`` - plain InfoNCE over every in-batch negative (the window ignored), for ablations.
"""

from __future__ import annotations

import torch

from ..engine.losses import hard_negative_infonce, infonce
from ..engine.trainer import TrainConfig
from ..hookspecs import hookimpl

__all__ = ["register_losses"]


def _hard_negative(queries: torch.Tensor, keys: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    return hard_negative_infonce(queries, keys, config.temperature, config.window)


def _plain(queries: torch.Tensor, keys: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    return infonce(queries, keys, config.temperature)


@hookimpl
def register_losses(register):
    register("hard_negative_infonce", _hard_negative,
             description="InfoNCE with negatives inside (0.1 s_i, 0.9 s_i) (paper Eq. 4)")
    register("infonce", _plain, description="InfoNCE over every in-batch negative")
