"""The projector ``P`` of paper Eq. 6: a small GELU MLP into the anchor space.

``P(x) = W2 GELU(W1 x + b1) + b2`` with hidden width ``d_m`` (the encoder's dimension) by
default; the output is L2-normalised. Width and depth are configurable.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Projector"]


class Projector(nn.Module):
    """MLP from an encoder's (centred) embedding space to the anchor space.

    Args:
        in_dim: encoder embedding dimension ``d_m``.
        out_dim: anchor dimension.
        hidden_dim: width of the hidden layers (default ``in_dim``, as in the paper).
        num_layers: number of Linear layers (2 in the paper; 1 = linear map).
        dropout: dropout after each hidden activation (0 in the paper).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.hidden_dim = hidden_dim or in_dim
        self.num_layers, self.dropout = num_layers, dropout
        dims = [in_dim] + [self.hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.GELU())
                if dropout:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``[n, in_dim]`` to L2-normalised ``[n, out_dim]``."""
        return F.normalize(self.net(x), dim=-1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments; ``Projector(**p.config())`` rebuilds the architecture."""
        return {
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "activation": "gelu",
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "Projector":
        cfg = dict(cfg)
        act = cfg.pop("activation", "gelu")
        if act != "gelu":
            raise ValueError(f"unsupported projector activation {act!r} (only 'gelu')")
        return cls(**cfg)

    def flops_per_sample(self) -> int:
        """Multiply-adds x2 of one forward pass (for throughput reports)."""
        return sum(2 * m.in_features * m.out_features for m in self.modules()
                   if isinstance(m, nn.Linear))
