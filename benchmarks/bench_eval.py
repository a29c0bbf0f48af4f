"""Evaluation benchmark: a full 10,000-item x 50,000-caption retrieval evaluation.

Random unit embeddings (5 captions per item, d=512), both directions (text->X and X->text
R@1/5/10), with :func:`textme_sdk.evaluation.metrics.caption_retrieval`. For comparison, the
per-query Python double loop of typical reference evaluation code (score every item, sort, find
the first relevant one) is timed on the first ``--loop-queries`` captions in the same run and
extrapolated linearly to all 50,000 (it is too slow to run in full); both agree on those queries.

Run: ``python benchmarks/bench_eval.py [--json out.json] [--items 10000] [--captions-per-item 5]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from textme_sdk.evaluation.metrics import caption_retrieval

from report import emit  # benchmarks/report.py (the script's folder is on sys.path)


def loop_reference(text: torch.Tensor, items: torch.Tensor, own: torch.Tensor, k: int) -> float:
    """What reference code does: one query at a time, a Python loop over the ranked items."""
    hits = 0
    for q in range(len(text)):
        scores = [float(text[q] @ items[j]) for j in range(len(items))]
        ranked = sorted(range(len(items)), key=lambda j: -scores[j])
        hits += int(own[q]) in ranked[:k]
    return 100.0 * hits / len(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--captions-per-item", type=int, default=5)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--loop-queries", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    items = F.normalize(torch.randn(args.items, args.dim, generator=g), dim=-1)
    own = torch.arange(args.items).repeat_interleave(args.captions_per_item)
    text = F.normalize(items[own] + 1.2 * torch.randn(len(own), args.dim, generator=g), dim=-1)

    start = time.perf_counter()
    metrics = caption_retrieval(text, items, own, (1, 5, 10))
    fast = time.perf_counter() - start

    n = args.loop_queries
    start = time.perf_counter()
    loop_r5 = loop_reference(text[:n], items, own[:n], 5)
    per_query = (time.perf_counter() - start) / n
    check = caption_retrieval(text[:n], items, own[:n], (5,))["T->X R@5"]
    result = {
        "items": args.items, "captions": len(own), "dim": args.dim,
        "torch_threads": torch.get_num_threads(),
        "vectorised_s_both_directions": round(fast, 2),
        "loop_s_per_query": round(per_query, 3),
        "loop_s_extrapolated_text_to_x_only": round(per_query * len(own), 0),
        "speedup_vs_loop_text_to_x": round(per_query * len(own) / fast, 0),
        "loop_agrees_on_its_queries": abs(check - loop_r5) < 1e-6,
        "metrics": {k: round(v, 3) for k, v in metrics.items()},
    }
    result["checks"] = [
        {"what": f"retrieval evaluation, {args.items:,} items x {len(own):,} captions, both directions",
         "value": round(fast, 2), "unit": "s", "target": "-", "met": None},
        {"what": "vectorised evaluation vs per-query loop of reference code (text->X, extrapolated)",
         "value": result["speedup_vs_loop_text_to_x"], "unit": "x faster", "target": ">= 10",
         "met": result["speedup_vs_loop_text_to_x"] >= 10 and result["loop_agrees_on_its_queries"]},
    ]
    emit(result, args.json)


if __name__ == "__main__":
    main()
