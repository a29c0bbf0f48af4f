"""Few-shot head benchmark: fitting a UML head on 1,000 classes x 16 shots on 2 CPU cores.

Random unit embeddings stand in for anchor embeddings (d=384, MiniLM's width): 16 shots per
class (16,000 shots) plus 12 class prompts per class (12,000 texts), full batch, the default
:class:`~textme_sdk.HeadConfig` (200 steps). For scale, the same run's FLOP rate is compared
with plain torch matmuls of the same shapes (the logits and the head's gradient, for the shots
and for the texts), the floor any implementation of this loss has to pay.

Run: ``python benchmarks/bench_heads.py [--json out.json] [--classes 1000] [--shots 16]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from textme_sdk.heads import HeadConfig, fit_head_on_embeddings

from report import emit  # benchmarks/report.py (the script's folder is on sys.path)


def matmul_floor(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, steps: int) -> float:
    """Seconds for ``steps`` x the two matmuls per source a step needs: the logits and the
    gradient of the head (the embeddings need none)."""
    start = time.perf_counter()
    for _ in range(steps):
        for a in (x, t):
            logits = a @ w.T
            _ = logits.T @ a  # gradient of w
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--shots", type=int, default=16)
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    C, d = args.classes, args.dim
    protos = F.normalize(torch.randn(C, d, generator=g), dim=-1)
    y = torch.arange(C).repeat_interleave(args.shots)
    x = F.normalize(protos[y] + 0.8 * torch.randn(len(y), d, generator=g), dim=-1)
    ty = torch.arange(C).repeat_interleave(args.prompts)
    t = F.normalize(protos[ty] + 0.3 * torch.randn(len(ty), d, generator=g), dim=-1)
    names = [f"class {i}" for i in range(C)]
    cfg = HeadConfig(steps=args.steps)

    fit_head_on_embeddings({"m": (x, y)}, (t, ty), names, 1.0, HeadConfig(steps=2))  # warm-up
    start = time.perf_counter()
    head = fit_head_on_embeddings({"m": (x, y)}, (t, ty), names, 1.0, cfg)
    fit_s = time.perf_counter() - start
    floor_steps = max(5, args.steps // 10)
    floor_s = matmul_floor(x, t, head.weight, floor_steps) * args.steps / floor_steps
    flops = args.steps * 2 * 2 * (len(x) + len(t)) * d * C
    train_acc = float((head.logits(x).argmax(-1) == y).float().mean() * 100)
    result = {
        "classes": C, "shots": len(x), "texts": len(t), "dim": d, "steps": args.steps,
        "torch_threads": torch.get_num_threads(),
        "fit_s": round(fit_s, 2), "ms_per_step": round(1000 * fit_s / args.steps, 1),
        "gflop_per_s": round(flops / fit_s / 1e9, 1),
        "matmul_floor_s": round(floor_s, 2),
        "train_accuracy": round(train_acc, 1),
        "checks": [
            {"what": f"fit a UML head, {C} classes x {args.shots} shots + {len(t)} texts, "
                     f"{args.steps} steps, d={d}, {args.threads} threads",
             "value": round(fit_s, 2), "unit": "s", "target": "<= 120", "met": fit_s <= 120},
            {"what": "share of the time in the loss's matmuls (their floor / fit time)",
             "value": round(floor_s / fit_s, 2), "unit": "ratio", "target": ">= 0.5",
             "met": floor_s / fit_s >= 0.5},
        ],
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
