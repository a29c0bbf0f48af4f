"""Retrieval and classification metrics, vectorised over queries (no Python loop per query).

Relevance is a boolean matrix ``[queries, items]`` so several correct items per query (e.g. the
five captions of a Flickr30k image) are handled as in the standard protocols: a query counts as
a hit at K when any relevant item is among its top K.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["relevance_from_labels", "recall_at_k", "topk_accuracy", "mrr", "average_precision",
           "auroc", "ppr"]

ArrayLike = torch.Tensor | Sequence


def _t(x, dtype=None) -> torch.Tensor:
    return torch.as_tensor(x, dtype=dtype)


def relevance_from_labels(query_labels: ArrayLike, item_labels: ArrayLike) -> torch.Tensor:
    """``rel[i, j] = query_labels[i] == item_labels[j]`` (e.g. concept match for X->X retrieval)."""
    return _t(query_labels).reshape(-1, 1) == _t(item_labels).reshape(1, -1)


def _first_relevant_rank(sim: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """0-based rank of the best-ranked relevant item per query (``inf`` when none is relevant)."""
    sim, relevance = _t(sim, torch.float32), _t(relevance, torch.bool)
    if sim.shape != relevance.shape:
        raise ValueError(f"similarity {tuple(sim.shape)} and relevance {tuple(relevance.shape)} differ")
    best_rel = torch.where(relevance, sim, torch.tensor(float("-inf"))).max(dim=1).values
    # items strictly better than the best relevant one (ties resolved in the query's favour)
    rank = (sim > best_rel.unsqueeze(1)).sum(dim=1).float()
    return torch.where(relevance.any(dim=1), rank, torch.tensor(float("inf")))


def recall_at_k(sim: ArrayLike, relevance: ArrayLike, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K in percent for each K: share of queries with a relevant item in their top K."""
    rank = _first_relevant_rank(_t(sim), _t(relevance))
    return {f"R@{k}": float((rank < k).float().mean() * 100) for k in ks}


def topk_accuracy(logits: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-K accuracy in percent of ``logits [N, C]`` against integer ``labels [N]``."""
    logits = _t(logits, torch.float32)
    labels = _t(labels, torch.long)
    rel = torch.nn.functional.one_hot(labels, logits.shape[1]).bool()
    rank = _first_relevant_rank(logits, rel)
    return {f"top{k}": float((rank < k).float().mean() * 100) for k in ks if k <= logits.shape[1]}


def mrr(sim: ArrayLike, relevance: ArrayLike, k: int | None = None) -> float:
    """Mean reciprocal rank (percent) of the first relevant item, 0 beyond rank ``k``."""
    rank = _first_relevant_rank(_t(sim), _t(relevance)) + 1
    rr = 1.0 / rank
    if k is not None:
        rr = torch.where(rank <= k, rr, torch.zeros_like(rr))
    return float(rr.mean() * 100)


def average_precision(scores: ArrayLike, targets: ArrayLike) -> torch.Tensor:
    """Average precision per column of ``scores [N, C]`` with binary ``targets [N, C]``.

    The mean over columns is the multi-label mAP (AudioSet protocol). Columns without a
    positive give ``nan``.
    """
    scores, targets = _t(scores, torch.float32), _t(targets, torch.float32)
    if scores.ndim == 1:
        scores, targets = scores[:, None], targets[:, None]
    order = scores.argsort(dim=0, descending=True)
    hits = targets.gather(0, order)
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1).unsqueeze(1)
    n_pos = hits.sum(0)
    return (precision * hits).sum(0) / n_pos.where(n_pos > 0, torch.tensor(float("nan")))


def auroc(scores: ArrayLike, targets: ArrayLike) -> float:
    """Area under the ROC curve for binary ``targets`` (Mann-Whitney U with tie handling)."""
    scores, targets = _t(scores, torch.float64).flatten(), _t(targets).flatten().bool()
    n_pos, n_neg = int(targets.sum()), int((~targets).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positive and negative targets")
    sorted_scores, order = scores.sort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    uniq, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    avg = ends - (counts.double() - 1) / 2  # mean rank of each tie group
    ranks[order] = avg[inverse]
    u = ranks[targets].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def ppr(textme: float, pretrained: float) -> float:
    """Performance-preservation ratio in percent: ``100 * textme / pretrained``."""
    return float("nan") if pretrained == 0 else 100.0 * textme / pretrained
