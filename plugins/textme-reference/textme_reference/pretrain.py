"""CLIP-style pretraining of the reference encoders on paired generated data.

Every step draws a fresh batch of (sample, caption) pairs from the world's ``"pretrain"``
stream and minimises the symmetric InfoNCE loss with a learnable temperature, exactly as CLIP
does; the modality gap this produces is kept on purpose (it is what TextME's offsets correct).
Runs are seeded and deterministic for a given torch build and thread count (the command line
uses one thread by default, which is also the fastest on a busy machine).

Reproduce the shipped weights::

    python -m textme_reference.pretrain --modality image --out plugins/textme-reference/textme_reference/assets
    python -m textme_reference.pretrain --modality audio --out plugins/textme-reference/textme_reference/assets
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import quality, world
from .models import ReferenceCLIP, audio_batch, build_model, default_config, image_batch, save_model

__all__ = ["DEFAULT_STEPS", "PretrainResult", "PretrainSettings", "learning_rate", "main", "pretrain", "training_step_batch"]

logger = logging.getLogger(__name__)


#: Steps of the shipped runs: pictures need more than sounds to reach a similar quality.
DEFAULT_STEPS: dict[str, int] = {"image": 2000, "audio": 1000}


@dataclass
class PretrainSettings:
    """Hyper-parameters of one pretraining run (recorded in the weights' JSON).

    ``steps=0`` means the modality's :data:`DEFAULT_STEPS`.
    """

    modality: str
    steps: int = 0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.modality not in DEFAULT_STEPS:
            raise ValueError(f"unknown modality {self.modality!r}; choose one of {tuple(DEFAULT_STEPS)}")
        if self.steps <= 0:
            self.steps = DEFAULT_STEPS[self.modality]


@dataclass
class PretrainResult:
    """A trained model with its loss curve and wall-clock time."""

    model: ReferenceCLIP
    losses: list[float]
    seconds: float

    def summary(self, settings: PretrainSettings) -> dict[str, Any]:
        """What the weights' JSON records about the run."""
        head, tail = self.losses[:20], self.losses[-50:]
        return {
            "settings": asdict(settings),
            "seconds": round(self.seconds, 1),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "loss_first_20_steps": round(sum(head) / len(head), 4),
            "loss_last_50_steps": round(sum(tail) / len(tail), 4),
            "final_temperature": round(math.exp(-self.model.logit_scale.item()), 4),
        }


def learning_rate(step: int, settings: PretrainSettings) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def training_step_batch(modality: str, batch_size: int, seed: int, step: int) -> tuple[torch.Tensor, list[str]]:
    """The model-ready inputs and captions of pretraining step ``step``."""
    items = world.training_batch(modality, batch_size, seed, step)
    to_batch = image_batch if modality == "image" else audio_batch
    return to_batch([it.data for it in items]), [it.caption for it in items]


def _optimiser(model: ReferenceCLIP, settings: PretrainSettings) -> torch.optim.Optimizer:
    """AdamW; no weight decay on the logit scale, biases, norms and embeddings' positions."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "position" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": settings.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.98), eps=1e-6)


def pretrain(settings: PretrainSettings,
             on_step: Callable[[int, float], None] | None = None) -> PretrainResult:
    """Train a fresh reference encoder of ``settings.modality`` from seed ``settings.seed``.

    Args:
        settings: hyper-parameters.
        on_step: optional callback ``(step, loss)`` after every step (progress display).
    """
    torch.manual_seed(settings.seed)
    model = build_model(default_config(settings.modality)).train()
    opt = _optimiser(model, settings)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(settings.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, settings)
        batch, captions = training_step_batch(settings.modality, settings.batch_size, settings.seed, step)
        loss = model(batch, captions)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    return PretrainResult(model.eval(), losses, time.perf_counter() - start)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m textme_reference.pretrain",
                                description="Pretrain a reference encoder on generated pairs.")
    p.add_argument("--modality", choices=world.MODALITIES, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder for <modality>.safetensors/.json")
    p.add_argument("--steps", type=int, default=0, help="default: 2000 (image), 1000 (audio)")
    p.add_argument("--batch-size", type=int, default=PretrainSettings.batch_size)
    p.add_argument("--lr", type=float, default=PretrainSettings.lr)
    p.add_argument("--seed", type=int, default=PretrainSettings.seed)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; 1 (default) makes runs reproducible on any machine")
    p.add_argument("--eval-items", type=int, default=1000, help="held-out items for the quality report")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: train, measure quality on held-out items, write weights + JSON."""
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    settings = PretrainSettings(args.modality, steps=args.steps, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed)

    def report(step: int, loss: float) -> None:
        if step % 100 == 0 or step == settings.steps - 1:
            logger.info("step %5d  loss %.4f", step, loss)

    result = pretrain(settings, report)
    scores = quality.evaluate(*quality.model_encoders(result.model), args.modality, n=args.eval_items)
    meta = {"training": result.summary(settings),
            "quality": {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}}
    path = save_model(result.model, args.out / f"{args.modality}.safetensors", meta)
    logger.info("wrote %s\n%s", path, json.dumps(meta, indent=1))
    return meta


if __name__ == "__main__":
    main()
