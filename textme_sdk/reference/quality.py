"""How good the reference encoders are on their own, and how big their modality gap is.

Every function takes L2-normalised embeddings (or callables that produce them), so the same
code measures a raw :class:`~.models.ReferenceCLIP` during pretraining and the registered
``ref-image`` / ``ref-audio`` plugins afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import world
from .models import ReferenceCLIP, audio_batch, image_batch

__all__ = [
    "ModalFn",
    "TextFn",
    "class_text_embeddings",
    "evaluate",
    "gap_metrics",
    "model_encoders",
    "recall_at_k",
    "zero_shot_accuracy",
]

TextFn = Callable[[list[str]], torch.Tensor]
ModalFn = Callable[[list[np.ndarray]], torch.Tensor]


def class_text_embeddings(encode_text: TextFn, modality: str) -> torch.Tensor:
    """One embedding per class: its prompts (:func:`world.prompts_for`) averaged, re-normalised."""
    names = world.class_names()
    prompts = [p for c in names for p in world.prompts_for(modality, c)]
    emb = encode_text(prompts)
    emb = emb.reshape(len(names), -1, emb.shape[-1])
    return F.normalize(emb.mean(dim=1), dim=-1)


def zero_shot_accuracy(modal: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> float:
    """Top-1 accuracy of assigning each modal embedding its most similar class embedding."""
    return (modal @ classes.T).argmax(dim=1).eq(labels).float().mean().item()


def recall_at_k(queries: torch.Tensor, gallery: torch.Tensor, k: int,
                relevant: torch.Tensor | None = None) -> float:
    """Fraction of queries whose top-``k`` gallery items contain a relevant one.

    By default query ``i`` is relevant only to gallery item ``i``; ``relevant`` (bool
    ``[Q, G]``) overrides that (e.g. "same class").
    """
    if relevant is None:
        relevant = torch.eye(len(queries), len(gallery), dtype=torch.bool)
    top = (queries @ gallery.T).topk(k, dim=1).indices
    return relevant.gather(1, top).any(dim=1).float().mean().item()


def _mean_offdiagonal(sim: torch.Tensor) -> float:
    n = sim.shape[0]
    return ((sim.sum() - sim.diagonal().sum()) / (n * n - n)).item()


def gap_metrics(text: torch.Tensor, modal: torch.Tensor) -> dict[str, float]:
    """Modality-gap statistics of paired, normalised embeddings ``text[i] <-> modal[i]``.

    Returns the centroid distance ``||mu_text - mu_modal||``, mean cosines of matching pairs,
    of non-matching cross-modal pairs and within each modality, and how well the direction
    ``mu_text - mu_modal`` alone separates the two modalities (1.0 = a clean gap).
    """
    mu_t, mu_m = text.mean(dim=0), modal.mean(dim=0)
    cross = text @ modal.T
    direction = F.normalize(mu_t - mu_m, dim=0)
    threshold = (mu_t + mu_m) @ direction / 2
    separated = torch.cat([text @ direction > threshold, modal @ direction <= threshold])
    return {
        "centroid_distance": (mu_t - mu_m).norm().item(),
        "paired_cosine": cross.diagonal().mean().item(),
        "unpaired_cross_cosine": _mean_offdiagonal(cross),
        "text_text_cosine": _mean_offdiagonal(text @ text.T),
        "modal_modal_cosine": _mean_offdiagonal(modal @ modal.T),
        "gap_direction_accuracy": separated.float().mean().item(),
    }


def evaluate(encode_text: TextFn, encode_modal: ModalFn, modality: str, n: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """The encoder's own quality on ``n`` held-out items (``split="eval"``).

    Reports zero-shot top-1 over the 24 classes, text->modal and modal->text recall (the
    item's own caption is the only match), text->modal R@1 where any item of the caption's
    class counts, and :func:`gap_metrics` of the caption/item pairs.
    """
    items = world.sample_items(modality, n, seed=seed, split="eval")
    labels = torch.tensor([it.label_index for it in items])
    text = encode_text([it.caption for it in items])
    modal = encode_modal([it.data for it in items])
    same_class = labels[:, None] == labels[None, :]
    return {
        "eval_items": n,
        "eval_seed": seed,
        "zero_shot_top1": zero_shot_accuracy(modal, labels, class_text_embeddings(encode_text, modality)),
        "text_to_modal_R@1": recall_at_k(text, modal, 1),
        "text_to_modal_R@5": recall_at_k(text, modal, 5),
        "modal_to_text_R@1": recall_at_k(modal, text, 1),
        "text_to_modal_class_R@1": recall_at_k(text, modal, 1, same_class),
        **gap_metrics(text, modal),
    }


def model_encoders(model: ReferenceCLIP, batch_size: int = 256) -> tuple[TextFn, ModalFn]:
    """Normalised, batched ``encode_text`` / ``encode_modal`` callables of a raw model."""
    to_batch = image_batch if model.cfg.modality == "image" else audio_batch

    def run(fn: Callable[[Any], torch.Tensor], inputs: Sequence[Any]) -> torch.Tensor:
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            out = torch.cat([fn(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)])
        model.train(was_training)
        return F.normalize(out.float(), dim=-1)

    def encode_text(texts: list[str]) -> torch.Tensor:
        return run(model.encode_text, texts)

    def encode_modal(data: list[np.ndarray]) -> torch.Tensor:
        return run(lambda chunk: model.encode_modal(to_batch(chunk)), data)

    return encode_text, encode_modal
