"""Scale of text extraction: ``textme embed-texts`` with the MiniLM anchor under ``torchrun`` at 1
and 2 processes (CPU, gloo) on the same texts, each into a fresh cache.

The machine's cores are split evenly: 1 process x ``cores`` threads, and 2 processes x
``cores / 2`` threads each (``OMP_NUM_THREADS``), so the comparison is of the sharding, not of
more hardware. Both runs must produce the same cache entry (checked, within float16 rounding).
Wall time includes process start-up, model loading and rank 0's merge.

Run: ``python benchmarks/bench_scaling.py [--json out.json] [--texts 20000]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from report import emit  # benchmarks/report.py (the script's folder is on sys.path)

BIN = Path(sys.executable).parent


def run(nproc: int, texts: Path, cache: Path, threads: int, chunk: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(BIN / "torchrun"), "--standalone", f"--nproc-per-node={nproc}", "-m",
           "textme_sdk.cli", "embed-texts", str(texts), "--anchor", "minilm", "--cache", str(cache),
           "--chunk-size", str(chunk), "--batch-size", "128"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return seconds


def entry(cache: Path) -> torch.Tensor:
    (path,) = [p for p in cache.glob("*/*.safetensors")]
    return load_file(str(path))["embeddings"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--texts", type=int, default=20_000)
    ap.add_argument("--chunk-size", type=int, default=1024)
    args = ap.parse_args()
    from textme_reference.world import caption_corpus

    cores = max(2, len(os.sched_getaffinity(0)))
    tmp = Path(tempfile.mkdtemp())
    try:
        texts = tmp / "texts.txt"
        texts.write_text("\n".join(caption_corpus("image", args.texts, seed=5)) + "\n")
        one = run(1, texts, tmp / "c1", cores, args.chunk_size)
        two = run(2, texts, tmp / "c2", cores // 2, args.chunk_size)
        same = torch.allclose(entry(tmp / "c1").float(), entry(tmp / "c2").float(), atol=2e-3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    speedup = one / two
    print(f"embed-texts {args.texts} texts: 1 process {one:.1f} s ({args.texts / one:.0f} texts/s), "
          f"2 processes {two:.1f} s ({args.texts / two:.0f} texts/s) -> {speedup:.2f}x "
          f"({cores} cores; same entry: {same})", file=sys.stderr)
    checks = [{"what": f"embed-texts (minilm, {args.texts:,} texts, torchrun CPU/gloo): 2 processes vs 1 "
                       f"on the same {cores} cores",
               "value": round(speedup, 3), "unit": "x", "target": ">= 0.9 (no loss from sharding)",
               "met": speedup >= 0.9 and same}]
    emit({"texts": args.texts, "cores": cores, "one_process_s": one, "two_processes_s": two,
          "texts_per_s": {"1": args.texts / one, "2": args.texts / two}, "speedup": speedup,
          "same_entry": same, "checks": checks}, args.json)


if __name__ == "__main__":
    main()
