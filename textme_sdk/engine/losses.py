"""Hard-negative InfoNCE (paper Eq. 4), vectorised over the batch.

For queries ``q_i`` (projected encoder-text embeddings) and keys ``k_j`` (anchor embeddings of
the same texts), with ``S = cos(q_i, k_j)`` and ``s_i = S_ii``: the positive of query ``i`` is
key ``i``; its negatives are the keys ``j != i`` with ``window[0]*s_i <= S_ij <= window[1]*s_i``
(hard, but not so close to the positive that they are likely paraphrases). The loss is the
mean over queries with at least one negative of ``-log softmax(S_i / tau)`` of the positive
among ``{positive} + negatives``, and 0 when no query has a negative.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .numerics import unit

__all__ = ["hard_negative_infonce", "infonce"]


def _similarities(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    if queries.shape != keys.shape:
        raise ValueError(
            f"queries {tuple(queries.shape)} and keys {tuple(keys.shape)} must have the same shape"
        )
    return unit(queries.float()) @ unit(keys.float()).T


def hard_negative_infonce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    temperature: float = 0.07,
    window: tuple[float, float] = (0.1, 0.9),
) -> torch.Tensor:
    """Vectorised hard-negative InfoNCE; computed in float32 even under fp16 autocast.

    Args:
        queries: ``[B, d]`` projected embeddings (need not be normalised).
        keys: ``[B, d]`` anchor embeddings; row ``i`` is the positive of query ``i``.
        temperature: softmax temperature ``tau``.
        window: ``(low, high)`` fractions of ``s_i`` bounding the negatives' similarity.

    Returns:
        A scalar tensor (differentiable w.r.t. ``queries`` and ``keys``).
    """
    with torch.autocast(device_type=queries.device.type, enabled=False):
        sim = _similarities(queries, keys)
        with torch.no_grad():
            pos = sim.diagonal().unsqueeze(1)
            keep = (sim >= window[0] * pos) & (sim <= window[1] * pos)
            keep.fill_diagonal_(False)
            active = keep.any(dim=1)  # queries with at least one negative
            keep.fill_diagonal_(True)  # the positive is always in the softmax
        if not bool(active.any()):
            return sim.sum() * 0.0
        return _MaskedNLL.apply(sim, keep, active, 1.0 / temperature)


class _MaskedNLL(torch.autograd.Function):
    """``mean over active i of -log softmax(where(keep_i, S_i / tau, -inf))[i]``, with the
    gradient towards ``S`` in closed form, ``(softmax - onehot) / tau / n_active`` on active
    rows: one pass over the ``[B, B]`` matrix instead of autograd's chain through ``where``,
    ``logsumexp`` and the row selection (the step's loss passes halve; same values and gradient
    to float rounding, ``tests/test_losses.py``)."""

    @staticmethod
    def forward(ctx, sim, keep, active, inv_t):  # type: ignore[override]
        log_p = torch.log_softmax(torch.where(keep, sim * inv_t, float("-inf")), dim=1)
        weight = active.to(sim.dtype) / active.sum()
        loss = -(log_p.diagonal() * weight).sum()
        ctx.inv_t = inv_t
        ctx.save_for_backward(sim, keep, log_p, weight)
        return loss

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        sim, keep, log_p, weight = ctx.saved_tensors
        row = (weight * (grad * ctx.inv_t)).unsqueeze(1)
        if torch.is_grad_enabled():  # double backward: the same formula, differentiable in sim
            log_p = torch.log_softmax(torch.where(keep, sim * ctx.inv_t, float("-inf")), dim=1)
            return log_p.exp() * row - torch.diag_embed(row.squeeze(1)), None, None, None
        out = log_p.exp().mul_(row)  # softmax; masked-out keys give exactly 0
        out.diagonal().sub_(row.squeeze(1))
        return out, None, None, None


def infonce(queries: torch.Tensor, keys: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Plain InfoNCE: every other key of the batch is a negative (no window); float32.

    Args:
        queries: ``[B, d]`` projected embeddings (need not be normalised).
        keys: ``[B, d]`` anchor embeddings; row ``i`` is the positive of query ``i``.
        temperature: softmax temperature ``tau``.
    """
    with torch.autocast(device_type=queries.device.type, enabled=False):
        logits = _similarities(queries, keys) * (1.0 / temperature)
        return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
