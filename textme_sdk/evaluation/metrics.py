"""Retrieval and classification metrics, vectorised over queries (no Python loop per query).

Relevance is a boolean matrix ``[queries, items]`` so several correct items per query (e.g. the
five captions of a Flickr30k image) are handled as in the standard protocols: a query counts as
a hit at K when any relevant item is among its top K.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["relevance_from_labels", "recall_at_k", "topk_accuracy", "mrr", "average_precision",
           "auroc", "f1_binary", "ppr", "caption_retrieval", "relevance_retrieval"]

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


def f1_binary(predictions: ArrayLike, targets: ArrayLike) -> float:
    """F1 score (percent) of the positive class for binary ``predictions`` and ``targets``."""
    pred, tgt = _t(predictions).flatten().bool(), _t(targets).flatten().bool()
    tp = int((pred & tgt).sum())
    fp, fn = int((pred & ~tgt).sum()), int((~pred & tgt).sum())
    return 0.0 if tp == 0 else 100.0 * 2 * tp / (2 * tp + fp + fn)


def caption_retrieval(
    text: torch.Tensor, items: torch.Tensor, caption_item: ArrayLike,
    ks: Sequence[int] = (1, 5, 10), chunk: int = 4096,
) -> dict[str, float]:
    """Text->X and X->text R@K (percent) for captions that each describe one item.

    The standard COCO / Flickr / AudioCaps / Clotho protocol: caption ``i`` is relevant to item
    ``caption_item[i]`` only (text->X); an item is retrieved correctly (X->text) when any of its
    captions is in the top K. Computed in chunks of ``chunk`` rows, so 50,000 captions x 10,000
    items need a few hundred MB, not the full relevance matrix.

    Args:
        text: ``[n_captions, d]`` normalised caption embeddings.
        items: ``[n_items, d]`` normalised item embeddings in the same space.
        caption_item: ``[n_captions]`` index of the item each caption describes.
        ks: the K values.
        chunk: rows per block.

    Returns:
        ``{"T->X R@1": ..., "X->T R@1": ..., "T->X MRR@10": ...}`` for every K.
    """
    text, items = _t(text, torch.float32), _t(items, torch.float32)
    own = _t(caption_item, torch.long).flatten()
    if own.numel() != len(text):
        raise ValueError(f"caption_item has {own.numel()} entries for {len(text)} captions")
    if own.numel() and (own.min() < 0 or own.max() >= len(items)):
        raise ValueError("caption_item holds indices outside the item list")
    # one pass over caption blocks: each similarity block serves both directions
    mine_all = (text * items[own]).sum(1)                     # caption vs its own item
    best = torch.full((len(items),), float("-inf"))           # item vs its best caption
    best.scatter_reduce_(0, own, mine_all, "amax")
    t2x = torch.empty(len(text))
    x2t = torch.zeros(len(items))
    for s in range(0, len(text), chunk):
        sim = text[s:s + chunk] @ items.T                     # [b, n_items]
        mine = sim.gather(1, own[s:s + chunk, None])
        t2x[s:s + chunk] = (sim > mine).sum(1).float()        # ties in the query's favour
        x2t += (sim > best[None, :] + 1e-5).sum(0).float()  # 1e-5: matmul vs dot rounding
    has_caption = torch.zeros(len(items), dtype=torch.bool)
    has_caption[own] = True
    x2t = x2t[has_caption]
    return _rank_summary(t2x, x2t, ks)


def _rank_summary(t2x: torch.Tensor, x2t: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    """R@K both ways and text->X MRR (percent) from 0-based ranks of the first hit."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"T->X R@{k}"] = float((t2x < k).float().mean() * 100)
    for k in ks:
        out[f"X->T R@{k}"] = float((x2t < k).float().mean() * 100)
    kmax = max(ks)
    rr = torch.where(t2x < kmax, 1.0 / (t2x + 1), torch.zeros_like(t2x))
    out[f"T->X MRR@{kmax}"] = float(rr.mean() * 100)
    return out


def relevance_retrieval(
    text: torch.Tensor, items: torch.Tensor, relevance: ArrayLike,
    ks: Sequence[int] = (1, 5, 10), chunk: int = 4096,
) -> dict[str, float]:
    """Text->X and X->text R@K (percent) under an explicit relevance matrix.

    For sets where a caption can be right for several items (a vague caption such as "a photo
    of a dog" truly describes every dog picture) or an item has graded annotations beyond its
    own captions. Caption ``i`` ranks the items and is a hit at K when any item with
    ``relevance[i, j]`` is in its top K; item ``j`` ranks the captions and is a hit when any
    caption with ``relevance[i, j]`` is in its top K. Ties are resolved in the query's favour,
    as in :func:`recall_at_k`. Queries without any relevant counterpart are left out (as
    :func:`caption_retrieval` leaves out items without captions). The similarity matrix is
    computed in blocks of ``chunk`` captions.

    Args:
        text: ``[n_captions, d]`` normalised caption embeddings.
        items: ``[n_items, d]`` normalised item embeddings in the same space.
        relevance: ``[n_captions, n_items]`` bool, True where caption ``i`` describes item ``j``.
        ks: the K values.
        chunk: captions per block.

    Returns:
        The keys of :func:`caption_retrieval`: ``"T->X R@K"``, ``"X->T R@K"`` for every K and
        ``"T->X MRR@<max K>"``.
    """
    text, items = _t(text, torch.float32), _t(items, torch.float32)
    rel = _t(relevance, torch.bool)
    if rel.shape != (len(text), len(items)):
        raise ValueError(f"relevance {tuple(rel.shape)} must be [captions, items] = "
                         f"[{len(text)}, {len(items)}]")
    blocks = range(0, len(text), chunk)
    keep = len(blocks) == 1  # one block: keep it for the second pass instead of recomputing
    kept: torch.Tensor | None = None
    t2x = torch.empty(len(text))
    best = torch.full((len(items),), float("-inf"))         # each item's best relevant caption
    for s in blocks:
        sim, r = text[s:s + chunk] @ items.T, rel[s:s + chunk]
        t2x[s:s + chunk] = _first_relevant_rank(sim, r)
        best = torch.maximum(best, torch.where(r, sim, torch.tensor(float("-inf"))).max(0).values)
        kept = sim if keep else None
    x2t = torch.zeros(len(items))
    for s in blocks:
        sim = kept if kept is not None else text[s:s + chunk] @ items.T
        x2t += (sim > best[None, :]).sum(0).float()         # captions ranked above the best
    t2x, x2t = t2x[rel.any(1)], x2t[rel.any(0)]
    return _rank_summary(t2x, x2t, ks)
