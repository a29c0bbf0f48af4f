"""Engine benchmarks, measured side by side in one run (ratios, not absolute timings).

1. Loss: vectorised hard-negative InfoNCE vs the per-query reference at batch 512
   (target >= 20x).
2. Trainer: achieved FLOP rate of ``fit_projector`` (forward + backward of the projector and the
   loss's similarity matmul) as a fraction of this machine's own torch matmul rate on the same
   shapes (target >= 85%), best of interleaved rounds.

Run: ``python benchmarks/bench_engine.py [--json out.json] [--device cuda] [--against GITREV]``
(``--against`` times the trainer of another git revision in the same interleaved rounds).
"""

from __future__ import annotations

import argparse
import time

import sys
from pathlib import Path

import torch

from textme_sdk.engine import Projector, TrainConfig, fit_projector, hard_negative_infonce

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


def _matmul_rate(b: int, d_in: int, hidden: int, d_out: int, device: str) -> float:
    """FLOP/s of plain torch matmuls of the trainer's own shapes (fwd + bwd pattern)."""
    x = torch.randn(b, d_in, device=device)
    w1 = torch.randn(d_in, hidden, device=device)
    w2 = torch.randn(hidden, d_out, device=device)
    h = torch.randn(b, hidden, device=device)
    y = torch.randn(b, d_out, device=device)

    def run():
        a = x @ w1          # fwd 1
        o = a @ w2          # fwd 2
        o @ y.T             # similarity
        y.T @ h             # grad w2
        y @ w2.T            # grad h
        x.T @ h             # grad w1
        if device == "cuda":
            torch.cuda.synchronize()

    flops = 2 * b * (d_in * hidden + hidden * d_out + b * d_out + hidden * d_out
                     + hidden * d_out + d_in * hidden)
    run()
    return flops / _best_of(run, 10)


def _trainer_from(rev: str):
    """``fit_projector`` as it was at git revision ``rev`` (for before/after in one run)."""
    import importlib.util
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "show", f"{rev}:textme_sdk/engine/trainer.py"], cwd=root,
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "trainer_at_rev.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("textme_sdk.engine._trainer_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # relative imports resolve inside textme_sdk.engine
    return module.fit_projector


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
    # per sample: forward 2 linears, backward ~2x forward, plus similarity row + its gradient
    per_sample = 3 * Projector(d_in, d_out).flops_per_sample() + 3 * 2 * batch * d_out
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
    emit({"device": args.device, "threads": torch.get_num_threads(), "loss": loss, "trainer": tr,
          "checks": checks}, args.json)


if __name__ == "__main__":
    main()
