"""Throughput of the ``viclip`` encoder: preprocessing (decode + sample + resize + normalise) and
encoding, measured side by side in one run on random weights (no download).

Prints one JSON object. Rates are per *source frame* (frames the decoder went through) and per
*model frame* (the 8 sampled frames per clip the network sees), for in-memory frames and for
MPEG-4 files written by the script.

Run: ``python plugins/textme-viclip/benchmarks/bench_viclip.py [--arch tiny|ViCLIP-B-16|ViCLIP-L-14]
[--videos 16] [--frames 64] [--size 128] [--device cpu] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import timeit
from pathlib import Path

import numpy as np
import torch

TINY_ARCH = {
    "embed_dim": 16, "image_size": 28, "patch_size": 14, "vision_width": 32,
    "vision_layers": 2, "vision_heads": 2, "text_width": 32, "text_layers": 2, "text_heads": 2,
}


def make_frames(n_videos: int, n_frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
            for _ in range(n_videos)]


def write_files(clips: list[np.ndarray], folder: Path) -> list[Path]:
    import av

    paths = []
    for i, frames in enumerate(clips):
        path = folder / f"clip{i:03d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=25)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def best_of(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn``, in seconds."""
    return min(timeit.repeat(fn, number=1, repeat=repeats))


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="tiny", choices=["tiny", "ViCLIP-B-16", "ViCLIP-L-14"])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--frames", type=int, default=64, help="source frames per clip")
    parser.add_argument("--size", type=int, default=128, help="source frame side length")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()

    from textme_viclip import ViCLIPEncoder
    from textme_viclip.video import clip_tensor

    torch.manual_seed(0)
    if args.arch == "tiny":
        enc = ViCLIPEncoder(arch=TINY_ARCH, random_init=True, device=args.device)
    else:
        enc = ViCLIPEncoder(args.arch, random_init=True, device=args.device)
    enc.load()
    clips = make_frames(args.videos, args.frames, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(clips, Path(tmp))
        enc.encode_modal(clips[:1])  # warm-up (tokenizer/model caches, allocator)

        batch = enc.preprocess(clips)
        t_pre_mem = best_of(lambda: enc.preprocess(clips), args.repeats)
        t_pre_file = best_of(lambda: enc.preprocess(files), args.repeats)
        # the released models' input size, whatever --arch is: 8 frames at 224 x 224
        t_pre_224 = best_of(lambda: [clip_tensor(c, 8, 224) for c in clips], args.repeats)

        def encode_only():
            with torch.inference_mode():
                for i in range(0, len(batch), args.batch_size):
                    enc.encode_modal_batch(batch[i:i + args.batch_size])

        t_enc = best_of(encode_only, args.repeats)
        t_total_file = best_of(lambda: enc.encode_modal(files, batch_size=args.batch_size),
                               args.repeats)
    model_frames = args.videos * enc.cfg.num_frames
    source_frames = args.videos * args.frames
    result = {
        "arch": args.arch, "device": args.device, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "videos": args.videos, "source_frames_per_video": args.frames,
        "source_size": args.size, "model_input": [enc.cfg.num_frames, 3, enc.cfg.image_size,
                                                  enc.cfg.image_size],
        "preprocess_memory_s": t_pre_mem, "preprocess_file_s": t_pre_file,
        "encode_s": t_enc, "file_end_to_end_s": t_total_file,
        "preprocess_memory_model_frames_per_s": model_frames / t_pre_mem,
        "preprocess_file_source_frames_per_s": source_frames / t_pre_file,
        "preprocess_memory_at_224_s": t_pre_224,
        "preprocess_memory_at_224_model_frames_per_s": args.videos * 8 / t_pre_224,
        "encode_model_frames_per_s": model_frames / t_enc,
        "file_end_to_end_source_frames_per_s": source_frames / t_total_file,
        "file_end_to_end_videos_per_s": args.videos / t_total_file,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
