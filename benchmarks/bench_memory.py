"""Training memory: peak resident memory of ``fit_projector`` on cached embeddings, as a multiple
of the cached embeddings' size on disk (target <= 1.5x).

The cache holds ``--texts`` rows at the paper's dims (encoder 1024-d, anchor 2560-d, float16,
as :class:`~textme_sdk.engine.EmbeddingCache` stores them). Each measurement runs in a fresh
subprocess, which reads both entries, trains one epoch and reports its peak memory above what it
held after ``import torch, textme_sdk`` (the interpreter is not the data's cost):

* ``mapped`` - what ``train_projector`` does: entries memory-mapped, rows centred per batch
  (``fit_projector(..., input_offset=mu_text)``).
* ``copy`` - the earlier way: entries read into memory, converted to float32 and centred as a
  whole before training.

Peak resident memory counts file pages of the mapping (the OS can drop them at any time);
``anon`` is memory the process itself allocated (sampled every 10 ms), the part that must fit.
A second, larger cache (``--big-texts``, first ``--big-steps`` steps) shows that the allocated
part does not grow with the number of texts.

Run: ``python benchmarks/bench_memory.py [--json out.json] [--texts 100000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from report import emit  # benchmarks/report.py (the script's folder is on sys.path)

D_IN, D_OUT = 1024, 2560


def build_cache(root: Path, n: int) -> dict:
    """Two cache entries (encoder text, anchor) of ``n`` random unit rows, written the way
    extraction writes them (chunk files, then one streamed entry)."""
    from textme_sdk.engine import EmbeddingCache

    cache = EmbeddingCache(root)
    texts = [f"text {i}" for i in range(n)]
    keys = {}
    for name, dim in (("encoder", D_IN), ("anchor", D_OUT)):
        model = {"bench": name, "dim": dim}
        gen = torch.Generator().manual_seed(dim)

        def compute(chunk, dim=dim, gen=gen):
            return torch.nn.functional.normalize(torch.randn(len(chunk), dim, generator=gen), dim=-1)

        cache.get_or_compute(model, texts, compute, chunk_size=16384, show_progress_bar=False)
        keys[name] = {"path": str(cache.path_for(model, texts)), "model": model}
    return keys


CHILD = r"""
import json, sys, threading, time
import torch, textme_sdk
from textme_sdk.engine import TrainConfig, fit_projector
from textme_sdk.engine.cache import _read
from safetensors.torch import load_file

def status():
    out = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    return out

peak_anon = [0]
stop = threading.Event()
def sample():
    while not stop.is_set():
        peak_anon[0] = max(peak_anon[0], status()["RssAnon"])
        time.sleep(0.01)

mode, enc_path, anc_path, max_steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.manual_seed(0)
base = status()
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
if mode == "mapped":
    x, y = _read(__import__("pathlib").Path(enc_path), None), _read(__import__("pathlib").Path(anc_path), None)
    mu = x[:4096].float().mean(0)
    kwargs = {"input_offset": mu}
else:
    x = load_file(enc_path)["embeddings"].float()
    y = load_file(anc_path)["embeddings"].float()
    mu = x[:4096].mean(0)
    x = x - mu
    kwargs = {}

class Enough(Exception):
    pass

def on_step(step, loss):
    if max_steps and step >= max_steps:
        raise Enough

cfg = TrainConfig(epochs=1, batch_size=512, val_fraction=0.05, device="cpu")
try:
    res = fit_projector(x, y, cfg, show_progress_bar=False, on_step=on_step, **kwargs)
    steps = res.steps
except Enough:
    steps = max_steps
seconds = time.perf_counter() - t0
stop.set()
end = status()
print(json.dumps({"mode": mode, "rows": len(x), "steps": steps, "seconds": seconds,
                  "base_rss": base["VmRSS"], "base_anon": base["RssAnon"],
                  "peak_rss": end["VmHWM"], "peak_anon": max(peak_anon[0], end["RssAnon"])}))
"""


def measure(mode: str, keys: dict, max_steps: int = 0) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, keys["encoder"]["path"],
                          keys["anchor"]["path"], str(max_steps)],
                         check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    size = sum(Path(keys[k]["path"]).stat().st_size for k in ("encoder", "anchor"))
    r["cache_bytes"] = size
    r["rss_multiple"] = (r["peak_rss"] - r["base_rss"]) / size
    r["anon_multiple"] = (r["peak_anon"] - r["base_anon"]) / size
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--big-texts", type=int, default=400_000,
                    help="a larger cache, trained for --big-steps steps (0 = skip)")
    ap.add_argument("--big-steps", type=int, default=40)
    ap.add_argument("--no-copy", action="store_true", help="skip the in-memory comparison")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        keys = build_cache(Path(tmp) / "small", args.texts)
        print(f"built a {args.texts}-text cache in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        runs = [measure("mapped", keys)]
        if not args.no_copy:
            runs.append(measure("copy", keys))
        if args.big_texts:
            big = build_cache(Path(tmp) / "big", args.big_texts)
            runs.append(measure("mapped", big, args.big_steps))
    for r in runs:
        print(f"{r['mode']:6s} {r['rows']:>8d} texts, {r['steps']} steps: peak RSS +"
              f"{r['peak_rss'] - r['base_rss']:,} B = {r['rss_multiple']:.2f}x the cache, allocated "
              f"+{r['peak_anon'] - r['base_anon']:,} B = {r['anon_multiple']:.2f}x", file=sys.stderr)
    main_run = runs[0]
    checks = [{"what": f"training peak RSS / cached embeddings size ({args.texts:,} texts, 1024 + 2560 dims, fp16)",
               "value": round(main_run["rss_multiple"], 3), "unit": "x", "target": "<= 1.5",
               "met": main_run["rss_multiple"] <= 1.5},
              {"what": f"training memory allocated (not file-backed) / cached size ({args.texts:,} texts)",
               "value": round(main_run["anon_multiple"], 3), "unit": "x", "target": "-", "met": None}]
    if not args.no_copy:
        checks.append({"what": "peak RSS / cache size when the cache is copied to float32 (the earlier way)",
                       "value": round(runs[1]["rss_multiple"], 3), "unit": "x", "target": "-",
                       "met": None})
    if args.big_texts:
        big_run = runs[-1]
        checks.append({"what": f"allocated memory at {args.big_texts:,} texts / at {args.texts:,} "
                               "(bounded: does not grow with the data)",
                       "value": round((big_run["peak_anon"] - big_run["base_anon"])
                                      / max(1, main_run["peak_anon"] - main_run["base_anon"]), 3),
                       "unit": "x", "target": "<= 1.5",
                       "met": (big_run["peak_anon"] - big_run["base_anon"])
                       <= 1.5 * (main_run["peak_anon"] - main_run["base_anon"])})
    emit({"texts": args.texts, "dims": [D_IN, D_OUT], "runs": runs, "checks": checks}, args.json)


if __name__ == "__main__":
    main()
