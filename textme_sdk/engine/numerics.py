"""Finiteness checks that cost one reduction and allocate nothing the size of the data.

``torch.isfinite(t).all()`` builds a boolean tensor as large as ``t`` and, on CPU, runs about
ten times slower than a sum. A sum is NaN/inf exactly when some value is, or when finite values
overflow; so the checks below reduce first (the whole tensor, or one value per row in chunks)
and look at single values only where a sum came out non-finite, confirming there elementwise
(an overflow is not a NaN). Used on every path that must refuse NaN: the embeddings ``embed``
returns, the training data, the cache's chunks, the trained weights.
"""

from __future__ import annotations

import math

import torch

__all__ = ["all_finite", "nonfinite_rows", "unit"]

_ROW_CHUNK = 8192


def nonfinite_rows(t: torch.Tensor, chunk: int = _ROW_CHUNK) -> torch.Tensor:
    """Indices (ascending, int64) of the rows of ``t`` (its first dimension) holding NaN/inf.

    Integer and boolean tensors have none. Works on memory-mapped tensors without reading
    them into memory: at most ``chunk`` rows' worth of one value each is allocated at a time.
    """
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return torch.empty(0, dtype=torch.long)
    if t.ndim == 0:
        return torch.empty(0, dtype=torch.long) if math.isfinite(t.item()) else torch.zeros(1, dtype=torch.long)
    if t.dtype != torch.float16 and _sum_is_finite(t):  # float16 sums overflow too easily
        return torch.empty(0, dtype=torch.long)
    bad = []
    for start in range(0, t.shape[0], chunk):
        c = t[start:start + chunk].reshape(min(chunk, t.shape[0] - start), -1)
        sums = c.sum(dim=1)
        suspect = (~torch.isfinite(sums)).nonzero().flatten()
        if len(suspect):
            really = (~torch.isfinite(c[suspect])).any(dim=1)
            bad.append(suspect[really] + start)
    return torch.cat(bad) if bad else torch.empty(0, dtype=torch.long)


def all_finite(t: torch.Tensor) -> bool:
    """``True`` when every value of ``t`` is finite (no NaN, no inf); see :func:`nonfinite_rows`."""
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return True
    if t.dtype != torch.float16 and _sum_is_finite(t):
        return True
    return len(nonfinite_rows(t.reshape(-1, t.shape[-1]) if t.ndim > 1 else t.reshape(-1, 1))) == 0


class _Unit(torch.autograd.Function):
    """``x / max(||x||, eps)`` along the last dimension, with a hand-written backward.

    The backward is the normalisation's Jacobian applied in one step,
    ``(g - y (g . y)) / max(||x||, eps)`` (``g`` alone where the norm was clamped), where
    autograd's generic chain through ``div``, ``clamp`` and ``norm`` makes several full-size
    passes and temporaries: about 3x faster per call on CPU at the trainer's shapes, with the
    same gradient to float rounding (``tests/test_numerics.py``).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        clamped = norm < eps
        norm = norm.clamp_min(eps)
        y = x / norm
        ctx.eps = eps
        ctx.save_for_backward(x, y, norm, clamped)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, y, norm, clamped = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the gradient is being built (double backward):
            norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(ctx.eps)
            y = x / norm  # recomputed from x, so that the graph reaches x
        grad = grad.to(y.dtype)
        dot = torch.linalg.vecdot(grad, y, dim=-1).unsqueeze(-1).masked_fill(clamped, 0)
        out = torch.addcmul(grad, y, dot, value=-1)
        return (out / norm if torch.is_grad_enabled() else out.div_(norm)), None


def unit(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """L2-normalise ``x`` along its last dimension; ``F.normalize(x, dim=-1, eps=eps)`` in value
    and gradient, with a cheaper backward (see :class:`_Unit`)."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return torch.nn.functional.normalize(x, dim=-1, eps=eps)
    return _Unit.apply(x, eps)


def _sum_is_finite(t: torch.Tensor) -> bool:
    s = t.sum()
    return bool(torch.isfinite(s)) if t.is_complex() else math.isfinite(s.item())
