"""A straightforward per-query implementation of the paper's Eq. 4, the reference that the
vectorised :func:`textme_sdk.engine.losses.hard_negative_infonce` is checked against (tests and
``benchmarks/bench_engine.py``). Not part of the library."""

from __future__ import annotations

import torch

from textme_sdk.engine.losses import _similarities  # the same cosine matrix; the loop differs


def reference_hard_negative_infonce(queries: torch.Tensor, keys: torch.Tensor, temperature=0.07,
                                    window=(0.1, 0.9)) -> torch.Tensor:
    """A straightforward per-query implementation of the same loss (for tests and benchmarks)."""
    sim = _similarities(queries, keys)
    losses = []
    for i in range(sim.shape[0]):
        s_i = sim[i, i]
        negatives = [
            sim[i, j]
            for j in range(sim.shape[0])
            if j != i and window[0] * s_i <= sim[i, j] <= window[1] * s_i
        ]
        if not negatives:
            continue
        logits = torch.stack([s_i, *negatives]) / temperature
        losses.append(-torch.log_softmax(logits, dim=0)[0])
    if not losses:
        return sim.sum() * 0.0
    return torch.stack(losses).mean()
