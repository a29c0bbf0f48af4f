"""Modality offsets: the centroids of an encoder's text and modal embeddings.

``mu_text = mean_i E_t(t_i)`` and ``mu_modal = mean_j E_x(x_j)`` over *independent, unpaired*
samples of L2-normalised embeddings (paper Sec. 3.2). Centring subtracts the centroid of the
matching branch from the same normalised embeddings.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import (
    DimensionMismatchError,
    EmptyInputError,
    InvalidEmbeddingError,
    InvalidInputError,
    MissingInputFileError,
)
from .numerics import all_finite

__all__ = ["StreamingMean", "Offsets"]


class StreamingMean:
    """Mean (and per-dimension variance) of row vectors seen in batches, in float64.

    Chan's parallel update keeps it exact and stable for any number of batches.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self._m2 = torch.zeros(dim, dtype=torch.float64)

    def update(self, batch: torch.Tensor) -> None:
        """Add the rows of ``batch`` ``[n, dim]``."""
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"expected embeddings of shape [n, {self.dim}], got {tuple(batch.shape)}"
            )
        x = batch.detach().to(torch.float64).cpu()
        if not all_finite(x):
            raise InvalidEmbeddingError("NaN/inf embedding passed to the offset estimate")
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(0)
        b_m2 = ((x - b_mean) ** 2).sum(0)
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self._m2 = self._m2 + b_m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def variance(self) -> torch.Tensor:
        """Unbiased per-dimension variance (zeros with fewer than two samples)."""
        if self.count < 2:
            return torch.zeros(self.dim, dtype=torch.float64)
        return self._m2 / (self.count - 1)

    def standard_error(self) -> float:
        """Standard error of the centroid estimate: ``sqrt(sum(var) / n)`` (L2 norm)."""
        if self.count == 0:
            return math.inf
        return float(torch.sqrt(self.variance.sum() / self.count))


@dataclass
class Offsets:
    """The two centroids of one encoder, with their sample counts.

    Attributes:
        mu_text: mean normalised text embedding ``[d_m]`` (float32).
        mu_modal: mean normalised modal embedding ``[d_m]`` (float32).
        n_text, n_modal: how many samples each centroid was estimated from.
        se_text, se_modal: standard errors of the two estimates (``nan`` when unknown).
        skipped: ``(position, reason)`` of the modal inputs that could not be read and were
            left out of ``mu_modal`` (``compute_offsets(..., on_error="skip")``); not stored
            in the offsets file (the bundle's modality config records them).

    Raises:
        DimensionMismatchError: the two centroids differ in size.
        InvalidEmbeddingError: a centroid holds NaN/inf (offsets are always finite).
        InvalidInputError: a negative sample count.
    """

    mu_text: torch.Tensor
    mu_modal: torch.Tensor
    n_text: int
    n_modal: int
    se_text: float = float("nan")
    se_modal: float = float("nan")
    skipped: list[tuple[int, str]] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.mu_text = self.mu_text.detach().float().cpu().reshape(-1)
        self.mu_modal = self.mu_modal.detach().float().cpu().reshape(-1)
        if self.mu_text.shape != self.mu_modal.shape:
            raise DimensionMismatchError(
                f"mu_text has {self.mu_text.numel()} dims but mu_modal has {self.mu_modal.numel()}"
            )
        for what, mu in (("mu_text", self.mu_text), ("mu_modal", self.mu_modal)):
            if not torch.isfinite(mu).all():
                raise InvalidEmbeddingError(
                    f"{what} holds NaN/inf values; recompute the offsets with compute_offsets "
                    "from finite embeddings")
        if self.n_text < 0 or self.n_modal < 0:
            raise InvalidInputError(f"sample counts must be >= 0, got n_text={self.n_text}, "
                                    f"n_modal={self.n_modal}")

    @property
    def dim(self) -> int:
        return self.mu_text.numel()

    @property
    def gap(self) -> float:
        """``||mu_text - mu_modal||``: the size of the modality gap."""
        return float((self.mu_text - self.mu_modal).norm())

    @classmethod
    def zeros(cls, dim: int) -> "Offsets":
        """No centring at all (the paper's "without offsets" ablation, Table 3)."""
        z = torch.zeros(dim)
        return cls(z, z.clone(), 0, 0)

    @classmethod
    def from_embeddings(
        cls, text: torch.Tensor | StreamingMean, modal: torch.Tensor | StreamingMean
    ) -> "Offsets":
        """Offsets from normalised embeddings ``[n, d]`` (or finished streaming means)."""
        means = []
        for what, x in (("text", text), ("modal", modal)):
            if isinstance(x, torch.Tensor):
                acc = StreamingMean(x.shape[-1])
                acc.update(x)
                x = acc
            if x.count == 0:
                raise EmptyInputError(
                    f"no {what} embeddings to estimate mu_{what} from; the paper uses ~5,000 "
                    f"unpaired {what} samples (1,000 suffice, Table 13)"
                )
            means.append(x)
        t, m = means
        if t.dim != m.dim:
            raise DimensionMismatchError(f"text dim {t.dim} != modal dim {m.dim}")
        return cls(t.mean.float(), m.mean.float(), t.count, m.count,
                   t.standard_error(), m.standard_error())

    def centre_text(self, emb: torch.Tensor) -> torch.Tensor:
        """``e - mu_text`` for normalised text-branch embeddings."""
        return self._centre(emb, self.mu_text)

    def centre_modal(self, emb: torch.Tensor) -> torch.Tensor:
        """``e - mu_modal`` for normalised modal-branch embeddings."""
        return self._centre(emb, self.mu_modal)

    def _centre(self, emb: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        if emb.shape[-1] != mu.numel():
            raise DimensionMismatchError(
                f"embeddings have {emb.shape[-1]} dims but the offsets have {mu.numel()}; "
                "were the offsets computed with a different encoder?"
            )
        return emb - mu.to(device=emb.device, dtype=emb.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors for safetensors: the centroids, counts and standard errors."""
        return {
            "mu_text": self.mu_text.contiguous(),
            "mu_modal": self.mu_modal.contiguous(),
            "n_text": torch.tensor([self.n_text], dtype=torch.int64),
            "n_modal": torch.tensor([self.n_modal], dtype=torch.int64),
            "se": torch.tensor([self.se_text, self.se_modal], dtype=torch.float64),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the offsets to a ``.safetensors`` file atomically (``textme offsets`` output)."""
        from .cache import atomic_save

        path = Path(path)
        atomic_save(self.state_dict(), path, metadata={"format": "textme-offsets"})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Offsets":
        """Offsets written by :meth:`save` (or ``textme offsets``).

        Raises:
            MissingInputFileError: no file at ``path``.
            InvalidInputError: the file is not an offsets file (damaged, other tensors).
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise MissingInputFileError(f"no offsets file at {path}; write one with "
                                        "compute_offsets(...).save(path) or `textme offsets`")
        try:
            return cls.from_state_dict(load_file(str(path)))
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            raise InvalidInputError(f"{path} is not an offsets file written by textme-sdk "
                                    f"({type(exc).__name__}: {exc})") from exc

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "Offsets":
        """Inverse of :meth:`state_dict`; raises ``KeyError`` naming a missing tensor."""
        expected = {"mu_text", "mu_modal", "n_text", "n_modal", "se"}
        missing, extra = expected - set(sd), set(sd) - expected
        if missing or extra:
            raise KeyError(f"offsets tensors: missing {sorted(missing)}, unexpected {sorted(extra)}")
        se = sd["se"].tolist()
        return cls(sd["mu_text"], sd["mu_modal"], int(sd["n_text"].item()),
                   int(sd["n_modal"].item()), se[0], se[1])
