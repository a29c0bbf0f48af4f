"""The measured steps of ``benchmarks/gpu_check.sh`` (one subcommand each; JSON to ``--json``).

``--device cpu`` runs every step at toy sizes, which is how the script's CPU mode checks itself
on machines without a GPU.

    python benchmarks/gpu_check_steps.py encoders-fp16 --device cuda --json out.json
    python benchmarks/gpu_check_steps.py uni3d-fps     --device cuda --json out.json
    python benchmarks/gpu_check_steps.py paper-train   --device cuda --json out.json
    python benchmarks/gpu_check_steps.py qwen3         --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import textme_sdk as tm

from report import emit  # benchmarks/report.py (the script's folder is on sys.path)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def encoders_fp16(device: str) -> dict:
    """Encoders and the anchor in half precision on the device agree with float32 on the CPU."""
    from textme_reference.world import caption_corpus, sample_items

    half = torch.float16 if device == "cuda" else torch.bfloat16
    texts = caption_corpus("image", 64, seed=7)
    items = [it.data for it in sample_items("image", 32, seed=7)]
    rows, checks = {}, []
    cases = {
        "ref-image text": lambda d, t: tm.get_encoder("ref-image", device=d, dtype=t).encode_text(texts),
        "ref-image modal": lambda d, t: tm.get_encoder("ref-image", device=d, dtype=t).encode_modal(items),
        "minilm anchor": lambda d, t: tm.get_anchor("minilm", device=d, dtype=t).encode(texts),
    }
    for name, fn in cases.items():
        ref = fn("cpu", torch.float32)
        t = time.perf_counter()
        out = fn(device, half)
        seconds = time.perf_counter() - t
        cos = F.cosine_similarity(ref, out.float(), dim=-1).min().item()
        rows[name] = {"min_cosine_vs_fp32_cpu": cos, "finite": bool(torch.isfinite(out).all()),
                      "seconds_incl_load": seconds}
        checks.append({"what": f"{name} in {str(half).split('.')[-1]} on {device}: min cosine to fp32 CPU",
                       "value": round(cos, 5), "unit": "", "target": ">= 0.99",
                       "met": cos >= 0.99 and rows[name]["finite"]})
    return {"dtype": str(half), "results": rows, "checks": checks}


def uni3d_fps(device: str) -> dict:
    """Farthest point sampling on the device: same indices as on the CPU, and its speed."""
    from textme_uni3d.model import farthest_point_sample

    n, npoint, b = (10_000, 512, 8) if device == "cuda" else (2_000, 64, 2)
    cloud = torch.from_numpy(__import__("numpy").random.default_rng(0).normal(size=(b, n, 3))).float()
    cpu = farthest_point_sample(cloud, npoint)
    x = cloud.to(device)
    farthest_point_sample(x, npoint)
    _sync(device)
    t = time.perf_counter()
    out = farthest_point_sample(x, npoint)
    _sync(device)
    seconds = time.perf_counter() - t
    same = bool(torch.equal(out.cpu(), cpu))
    return {"clouds": b, "points": n, "npoint": npoint, "seconds": seconds, "same_as_cpu": same,
            "checks": [{"what": f"Uni3D FPS on {device} ({b} x {n:,} points -> {npoint}): same indices as CPU",
                        "value": round(b * n / seconds), "unit": "points/s", "target": "same as CPU",
                        "met": same}]}


def paper_train(device: str) -> dict:
    """Paper-config training (d 1024 -> 1024 -> 2560, batch 512, fp16 autocast + GradScaler on
    CUDA) on cached float16 embeddings: seconds per epoch of 100K texts, and 50 epochs."""
    n, epochs = (100_000, 2) if device == "cuda" else (2_048, 1)
    g = torch.Generator().manual_seed(0)
    x = F.normalize(torch.randn(n, 1024, generator=g), dim=-1).half()
    y = F.normalize(x.float() @ torch.randn(1024, 2560, generator=g), dim=-1).half()
    cfg = tm.TrainConfig(epochs=epochs, batch_size=512, device=device)
    with tempfile.TemporaryDirectory() as ckpt:
        t = time.perf_counter()
        res = tm.engine.fit_projector(x, y, cfg, checkpoint_dir=ckpt, show_progress_bar=False)
        seconds = time.perf_counter() - t
    epoch_s = seconds / epochs
    finite = all(torch.isfinite(p).all() for p in res.projector.parameters())
    return {"texts": n, "epochs": epochs, "seconds": seconds, "epoch_s": epoch_s,
            "samples_per_s": res.samples_per_second, "history": res.history,
            "checks": [
                {"what": f"paper-config training on {device}: one epoch of {n:,} cached texts "
                         "(incl. held-out evaluation and checkpoint)",
                 "value": round(epoch_s, 2), "unit": "s", "target": "-", "met": None},
                {"what": f"paper-config training on {device}: 50 epochs of 100K texts (extrapolated; "
                         "the paper: ~2 h per modality on one A6000)",
                 "value": round(epoch_s * 50 * 100_000 / n / 60, 2), "unit": "min",
                 "target": "< 120 (on a GPU)",
                 "met": (finite and epoch_s * 50 * 100_000 / n < 7200) if device == "cuda"
                 else (None if finite else False)}]}


def qwen3(device: str) -> dict:
    """Qwen3-Embedding-0.6B's architecture with random weights, through the SDK's ``qwen3``
    anchor: text extraction throughput (float16 on CUDA)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    from textme_reference.world import caption_corpus

    full = device == "cuda"
    texts = caption_corpus("image", 4096 if full else 64, seed=8)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000,
                                                       special_tokens=["<|endoftext|>", "<unk>"]))
    eos = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(single="$A <|endoftext|>",
                                                       special_tokens=[("<|endoftext|>", eos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<unk>")
    if full:  # Qwen3-Embedding-0.6B
        cfg = Qwen3Config(vocab_size=151669, hidden_size=1024, num_hidden_layers=28,
                          num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                          intermediate_size=3072, max_position_embeddings=32768,
                          tie_word_embeddings=True, rms_norm_eps=1e-6)
    else:
        cfg = Qwen3Config(vocab_size=len(fast) + 8, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                          intermediate_size=64, max_position_embeddings=256)
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        Qwen3Model(cfg).to(torch.float16 if full else torch.float32).save_pretrained(folder)
        fast.save_pretrained(folder)
        anchor = tm.get_anchor("qwen3", model_id=folder, device=device,
                               dtype=torch.float16 if full else None, dim=cfg.hidden_size).load()
        anchor.encode(texts[:64], batch_size=64)
        _sync(device)
        t = time.perf_counter()
        out = anchor.encode(texts, batch_size=128)
        _sync(device)
        seconds = time.perf_counter() - t
    finite = bool(torch.isfinite(out).all())
    return {"texts": len(texts), "hidden": cfg.hidden_size, "layers": cfg.num_hidden_layers,
            "seconds": seconds, "texts_per_s": len(texts) / seconds,
            "checks": [{"what": f"qwen3 anchor ({cfg.num_hidden_layers} layers x {cfg.hidden_size}, random "
                                f"weights) on {device}: extraction throughput, batch 128",
                        "value": round(len(texts) / seconds, 1), "unit": "texts/s", "target": "-",
                        "met": None if finite else False}]}


STEPS = {"encoders-fp16": encoders_fp16, "uni3d-fps": uni3d_fps, "paper-train": paper_train,
         "qwen3": qwen3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=sorted(STEPS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json")
    args = ap.parse_args()
    result = STEPS[args.step](args.device)
    result["device"] = args.device
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    emit(json.loads(json.dumps(result, default=str)), args.json)


if __name__ == "__main__":
    main()
