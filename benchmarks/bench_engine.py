"""Engine benchmarks, measured side by side in one run (ratios, not absolute timings).

1. Loss: vectorised hard-negative InfoNCE vs the per-query reference at batch 512
   (target >= 20x).
2. Trainer: achieved FLOP rate of ``fit_projector`` as a fraction of this machine's own torch
   matmul rate on the same matmuls (target >= 85%), best of interleaved rounds. The FLOPs of a
   step are counted matmul by matmul: the projector's two forward matmuls, the backward's
   weight gradients of both layers and the input gradient of the second (the first layer's
   input, the training data, needs none), the loss's similarity matmul and its gradient
   towards the projected side (the anchor targets are fixed); the machine's rate is the best
   rate of exactly those seven matmuls run plainly. Everything else a step does (GELU,
   normalisation, the loss's masking and softmax, AdamW, gathering the batch) is the gap.

Run: ``python benchmarks/bench_engine.py [--json out.json] [--device cuda] [--against GITREV]``
(``--against`` times the training engine - ``textme_sdk/engine`` - of another git revision in
the same interleaved rounds).
"""

from __future__ import annotations

import argparse
import time

import sys
from pathlib import Path

import torch

from textme_sdk.engine import TrainConfig, fit_projector, hard_negative_infonce

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_losses import reference_hard_negative_infonce  # noqa: E402  (per-query Eq. 4)
from report import emit  # noqa: E402  (benchmarks/report.py)


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_loss(batch: int = 512, dim: int = 1024, device: str = "cpu") -> dict:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(batch, dim, generator=g).to(device)
    k = (q.cpu() + 0.7 * torch.randn(batch, dim, generator=g)).to(device)
    fast = _best_of(lambda: hard_negative_infonce(q, k), 20)
    slow = _best_of(lambda: reference_hard_negative_infonce(q, k), 2)
    same = abs(hard_negative_infonce(q, k).item() - reference_hard_negative_infonce(q, k).item())
    return {"batch": batch, "vectorised_ms": fast * 1e3, "reference_ms": slow * 1e3,
            "speedup": slow / fast, "abs_diff": same}


def _step_flops(b: int, d_in: int, hidden: int, d_out: int) -> int:
    """FLOPs of the matmuls of one training step (see the module docstring)."""
    return 2 * b * (d_in * hidden + hidden * d_out      # forward, two layers
                    + b * d_out + b * d_out              # similarity and its gradient
                    + hidden * d_out + hidden * d_out    # layer 2: weight and input gradients
                    + d_in * hidden)                     # layer 1: weight gradient


def _matmul_rate(b: int, d_in: int, hidden: int, d_out: int, device: str) -> float:
    """FLOP/s of plain torch matmuls of the trainer's own shapes (the step's seven matmuls)."""
    x = torch.randn(b, d_in, device=device)
    w1 = torch.randn(d_in, hidden, device=device)
    w2 = torch.randn(hidden, d_out, device=device)
    h = torch.randn(b, hidden, device=device)
    y = torch.randn(b, d_out, device=device)

    def run():
        a = x @ w1          # fwd 1
        o = a @ w2          # fwd 2
        s = o @ y.T         # similarity
        s @ y               # its gradient towards the projected side
        y.T @ h             # grad w2
        y @ w2.T            # grad h
        x.T @ h             # grad w1
        if device == "cuda":
            torch.cuda.synchronize()

    run()
    return _step_flops(b, d_in, hidden, d_out) / _best_of(run, 10)


def _trainer_from(rev: str):
    """``fit_projector`` of the engine package (``textme_sdk/engine``) as it was at git revision
    ``rev``, imported beside today's as ``textme_sdk._engine_at_rev`` (before/after in one run:
    projector, loss and trainer all of that revision)."""
    import importlib
    import importlib.util
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "textme_sdk/engine/"], cwd=root,
                           check=True, capture_output=True, text=True).stdout.split()
    folder = Path(tempfile.mkdtemp()) / "engine_at_rev"
    folder.mkdir()
    for name in names:
        if name.endswith(".py"):
            (folder / Path(name).name).write_text(subprocess.run(
                ["git", "show", f"{rev}:{name}"], cwd=root, check=True, capture_output=True,
                text=True).stdout)
    package = "textme_sdk._engine_at_rev"
    spec = importlib.util.spec_from_file_location(package, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    spec.loader.exec_module(module)  # ``..errors`` and the like resolve inside textme_sdk
    return importlib.import_module(f"{package}.trainer").fit_projector


_GROUPS = {  # aten op -> where its time goes in a training step
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"),
    "optimizer (AdamW, zero_grad, clip)": ("aten::_fused_adamw_", "aten::_foreach_", "aten::zero_",
                                           "aten::clamp", "aten::_foreach_norm"),
    "batch gather and fp16->fp32": ("aten::index", "aten::copy_", "aten::to", "aten::_to_copy",
                                    "aten::index_select"),
    "GELU": ("aten::gelu", "aten::gelu_backward"),
    "normalisation": ("aten::linalg_vector_norm", "aten::div", "aten::div_", "aten::addcmul",
                      "aten::linalg_vecdot", "aten::clamp_min"),
    "loss (window mask, softmax)": ("aten::where", "aten::exp", "aten::exp_", "aten::amax",
                                    "aten::ge", "aten::le", "aten::bitwise_and", "aten::any",
                                    "aten::logsumexp", "aten::fill_", "aten::masked_fill",
                                    "aten::masked_fill_", "aten::sub", "aten::neg", "aten::log",
                                    "aten::sum", "aten::mul", "aten::mul_", "aten::add_",
                                    "aten::mean", "aten::diagonal", "aten::eq"),
}


def step_breakdown(n: int = 4096, d_in: int = 1024, d_out: int = 2560, batch: int = 512,
                   device: str = "cpu") -> dict[str, float]:
    """Share of a training step's operator time per kind of work (torch profiler, self time of
    each aten op; one epoch of ``n`` texts). Ops not listed in ``_GROUPS`` count as "other"."""
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g).half()
    y = torch.nn.functional.normalize(torch.randn(n, d_out, generator=g), dim=-1).half()
    cfg = TrainConfig(epochs=1, batch_size=batch, val_fraction=0.0, device=device)
    fit_projector(x, y, cfg, show_progress_bar=False)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit_projector(x, y, cfg, show_progress_bar=False)
    shares: dict[str, float] = {}
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::"):
            continue
        group = next((k for k, ops in _GROUPS.items()
                      if ev.key in ops or any(ev.key.startswith(o) for o in ops if o.endswith("_"))),
                     "other")
        shares[group] = shares.get(group, 0.0) + ev.self_cpu_time_total
    total = sum(shares.values()) or 1.0
    return {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def bench_trainer(n: int = 16384, d_in: int = 1024, d_out: int = 2560, batch: int = 512,
                  device: str = "cpu", epochs: int = 2, rounds: int = 3,
                  against: str | None = None) -> dict:
    """Trainer FLOP rate vs plain matmuls of its shapes, best of ``rounds`` interleaved rounds
    (and, with ``against``, the trainer of that git revision in the same rounds)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g).half()
    y = torch.nn.functional.normalize(torch.randn(n, d_out, generator=g), dim=-1).half()
    cfg = TrainConfig(epochs=epochs, batch_size=batch, val_fraction=0.0, device=device)
    fits = {"now": fit_projector}
    if against:
        fits[against] = _trainer_from(against)
    best = {name: 0.0 for name in fits}
    machine, steps = 0.0, 0
    _matmul_rate(batch, d_in, d_in, d_out, device)  # warm-up
    for _ in range(rounds):
        for name, fit in fits.items():
            res = fit(x, y, cfg, show_progress_bar=False)
            best[name], steps = max(best[name], res.samples_per_second), res.steps
        machine = max(machine, _matmul_rate(batch, d_in, d_in, d_out, device))
    per_sample = _step_flops(batch, d_in, d_in, d_out) / batch
    out = {"n_texts": n, "dims": [d_in, d_in, d_out], "batch": batch, "steps": steps,
           "rounds": rounds, "samples_per_s": best["now"],
           "achieved_gflops": per_sample * best["now"] / 1e9, "matmul_gflops": machine / 1e9,
           "ratio": per_sample * best["now"] / machine}
    if against:
        out["against"] = {"rev": against, "samples_per_s": best[against],
                          "ratio": per_sample * best[against] / machine,
                          "speedup": best["now"] / best[against]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="smaller trainer run")
    ap.add_argument("--against", metavar="GITREV",
                    help="also time the trainer of this git revision in the same rounds")
    args = ap.parse_args()
    loss = bench_loss(device=args.device)
    print(f"loss @ batch 512: vectorised {loss['vectorised_ms']:.2f} ms, per-query reference "
          f"{loss['reference_ms']:.1f} ms -> {loss['speedup']:.0f}x faster (|diff| {loss['abs_diff']:.1e})")
    tr = bench_trainer(device=args.device, n=4096 if args.quick else 16384,
                       rounds=2 if args.quick else 3, against=args.against)
    print(f"trainer: {tr['samples_per_s']:.0f} texts/s, {tr['achieved_gflops']:.1f} GFLOP/s achieved vs "
          f"{tr['matmul_gflops']:.1f} GFLOP/s plain matmul -> {100 * tr['ratio']:.0f}% of the machine's rate")
    breakdown = step_breakdown(device=args.device) if args.device == "cpu" else {}
    if breakdown:
        print("a step's operator time: " + ", ".join(f"{k} {100 * v:.1f}%"
                                                     for k, v in breakdown.items()))
    if args.against:
        a = tr["against"]
        print(f"trainer at {a['rev']}: {a['samples_per_s']:.0f} texts/s -> {100 * a['ratio']:.0f}% "
              f"of the machine's rate; now {a['speedup']:.2f}x faster")
    checks = [
        {"what": "hard-negative loss: vectorised vs per-query loop (batch 512, d 1024)",
         "value": round(loss["speedup"], 1), "unit": "x faster", "target": ">= 20",
         "met": loss["speedup"] >= 20 and loss["abs_diff"] < 1e-5},
        {"what": "trainer FLOP rate / torch matmul rate of its shapes (1024->1024->2560, batch 512)",
         "value": round(tr["ratio"], 3), "unit": "fraction", "target": ">= 0.85",
         "met": tr["ratio"] >= 0.85},
    ]
    checks += [{"what": f"share of a training step's operator time: {k}", "value": round(v, 3),
                "unit": "fraction", "target": "-", "met": None} for k, v in breakdown.items()]
    emit({"device": args.device, "threads": torch.get_num_threads(), "loss": loss, "trainer": tr,
          "step_breakdown": breakdown, "checks": checks}, args.json)


if __name__ == "__main__":
    main()
