"""Throughput of the uni3d plugin on CPU: preprocessing and encoding, in points per second.

Uses the real grouping workload (10,000-point clouds, 512 FPS centres, 64-point kNN patches,
the full mini-PointNet) with a tiny EVA transformer and random weights, so it measures the
port's own code (FPS, kNN, patch encoder), not a checkpoint. Prints one JSON object.

    python plugins/textme-uni3d/benchmarks/bench_uni3d.py --clouds 4 --batch 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch


def _tiny_clip_name() -> str:
    """Register a tiny open_clip text config (the text branch is not measured)."""
    import open_clip

    name = "uni3d-bench-tiny-clip"
    folder = tempfile.mkdtemp(prefix="uni3d-bench-")
    cfg = {"embed_dim": 32,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16,
                          "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                        "layers": 1},
           "custom_text": True}
    with open(os.path.join(folder, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    open_clip.add_model_config(folder)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clouds", type=int, default=4, help="clouds to encode")
    parser.add_argument("--batch", type=int, default=2, help="clouds per batch")
    parser.add_argument("--raw-points", type=int, default=20000,
                        help="points per input cloud before resampling to --npoints")
    parser.add_argument("--npoints", type=int, default=10000)
    parser.add_argument("--groups", type=int, default=512)
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--sampling", choices=("random", "fps"), default="random")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from textme_uni3d import Uni3DEncoder

    arch = {"pc_feat_dim": 64, "embed_dim": 32, "num_group": args.groups,
            "group_size": args.group_size, "npoints": args.npoints,
            "timm_kwargs": {"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 28,
                            "num_classes": 0}}
    enc = Uni3DEncoder("tiny", arch=arch, clip_model=_tiny_clip_name(), random_init=True,
                       sampling=args.sampling, device="cpu").load()
    rng = np.random.default_rng(0)
    clouds = [np.concatenate([rng.normal(size=(args.raw_points, 3)),
                              rng.random((args.raw_points, 3))], 1) for _ in range(args.clouds)]

    enc.encode_modal(clouds[:1])  # warm-up
    start = time.perf_counter()
    batches = [enc.preprocess(clouds[i:i + args.batch])
               for i in range(0, len(clouds), args.batch)]
    t_pre = time.perf_counter() - start
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            enc.encode_modal_batch(batch)
    t_enc = time.perf_counter() - start
    start = time.perf_counter()
    enc.encode_modal(clouds, batch_size=args.batch)
    t_all = time.perf_counter() - start

    model_points = args.clouds * args.npoints
    text = json.dumps({
        "benchmark": "uni3d_cpu_tiny",
        "clouds": args.clouds, "batch": args.batch, "raw_points": args.raw_points,
        "npoints": args.npoints, "groups": args.groups, "group_size": args.group_size,
        "sampling": args.sampling, "threads": args.threads,
        "preprocess_s": round(t_pre, 4),
        "preprocess_input_points_per_s": round(args.clouds * args.raw_points / t_pre),
        "encode_s": round(t_enc, 4),
        "encode_points_per_s": round(model_points / t_enc),
        "end_to_end_s": round(t_all, 4),
        "end_to_end_clouds_per_s": round(args.clouds / t_all, 3),
        "torch": torch.__version__, "machine": platform.machine(),
    }, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
