"""The projector ``P`` of paper Eq. 6: a small GELU MLP into the anchor space.

``P(x) = W2 GELU(W1 x + b1) + b2`` with hidden width ``d_m`` (the encoder's dimension) by
default; the output is L2-normalised. Width and depth are configurable.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from .numerics import unit

if TYPE_CHECKING:
    from .trainer import TrainResult

__all__ = ["Projector"]

CONFIG_KEYS = ("in_dim", "out_dim", "hidden_dim", "num_layers", "dropout", "activation")


def _count(name: str, value: Any) -> int:
    """``value`` as a positive ``int`` (bools, floats and strings are refused)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n}")
    return n


def _layer_dims(in_dim: int, out_dim: int, hidden_dim: int, num_layers: int) -> list[tuple[int, int]]:
    dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
    return [(dims[i], dims[i + 1]) for i in range(num_layers)]


class Projector(nn.Module):
    """MLP from an encoder's (centred) embedding space to the anchor space.

    Args:
        in_dim: encoder embedding dimension ``d_m``.
        out_dim: anchor dimension.
        hidden_dim: width of the hidden layers (default ``in_dim``, as in the paper).
        num_layers: number of Linear layers (2 in the paper; 1 = linear map).
        dropout: dropout after each hidden activation (0 in the paper), in ``[0, 1)``.

    Raises:
        ValueError: a dimension or ``num_layers`` that is not a positive integer, or a dropout
            outside ``[0, 1)``.
    """

    #: What :func:`~textme_sdk.train_projector` returned with this projector (history, best
    #: epoch, throughput); ``None`` for a projector that was built or loaded, not trained here.
    training_result: TrainResult | None = None

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        in_dim, out_dim = _count("in_dim", in_dim), _count("out_dim", out_dim)
        hidden_dim = in_dim if hidden_dim is None else _count("hidden_dim", hidden_dim)
        num_layers = _count("num_layers", num_layers)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not math.isfinite(dropout) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.hidden_dim = hidden_dim
        self.num_layers, self.dropout = num_layers, float(dropout)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(_layer_dims(in_dim, out_dim, hidden_dim, num_layers)):
            layers.append(nn.Linear(a, b))
            if i < num_layers - 1:
                layers.append(nn.GELU())
                if dropout:
                    layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)
        self._device = self.net[0].weight.device

    @property
    def device(self) -> torch.device:
        """Where the projector's weights are (kept up to date by ``to()``, ``cuda()``...)."""
        return self._device

    def _apply(self, fn, *args, **kwargs):  # every move or cast of the weights goes through here
        out = super()._apply(fn, *args, **kwargs)
        self._device = self.net[0].weight.device
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``[n, in_dim]`` to L2-normalised ``[n, out_dim]``."""
        return unit(self.net(x))

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

    @staticmethod
    def _arguments(cfg: dict[str, Any]) -> dict[str, Any]:
        cfg = dict(cfg)
        act = cfg.pop("activation", "gelu")
        if act != "gelu":
            raise ValueError(f"unsupported projector activation {act!r} (only 'gelu')")
        unknown = sorted(set(cfg) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"unknown projector config keys {unknown} (known: {list(CONFIG_KEYS)})")
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "Projector":
        """Build the architecture :meth:`config` describes (weights are random)."""
        return cls(**cls._arguments(cfg))

    @classmethod
    def parameter_shapes(cls, cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The ``state_dict`` shapes of the projector ``cfg`` describes, allocating nothing.

        Lets a loader compare a weight file's header with its config before building anything.
        """
        args = cls._arguments(cfg)
        in_dim, out_dim = _count("in_dim", args.get("in_dim")), _count("out_dim", args.get("out_dim"))
        hidden = args.get("hidden_dim")
        hidden = in_dim if hidden is None else _count("hidden_dim", hidden)
        num_layers = _count("num_layers", args.get("num_layers", 2))
        step = 3 if args.get("dropout") else 2  # Linear, GELU[, Dropout] per hidden layer
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(_layer_dims(in_dim, out_dim, hidden, num_layers)):
            shapes[f"net.{i * step}.weight"] = (b, a)
            shapes[f"net.{i * step}.bias"] = (b,)
        return shapes

    def flops_per_sample(self) -> int:
        """Multiply-adds x2 of one forward pass (for throughput reports)."""
        return sum(2 * m.in_features * m.out_features for m in self.modules()
                   if isinstance(m, nn.Linear))
