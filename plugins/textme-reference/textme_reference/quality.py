"""How good the reference encoders are on their own, and how big their modality gap is.

Every function takes L2-normalised embeddings (or callables that produce them), so the same
code measures a raw :class:`~.models.ReferenceCLIP` during pretraining and the registered
``ref-image`` / ``ref-audio`` plugins afterwards. The metrics are textme-sdk's own
(:mod:`textme_sdk.evaluation`, :mod:`textme_sdk.diagnostics`); this module only picks the data
and names the numbers that the weights' JSON records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from textme_sdk.diagnostics import gap_geometry
from textme_sdk.evaluation import (
    caption_retrieval,
    prompt_prototypes,
    recall_at_k,
    relevance_from_labels,
    topk_accuracy,
    zero_shot_predict,
)

from . import world
from .models import ReferenceCLIP, audio_batch, image_batch

__all__ = ["ModalFn", "TextFn", "evaluate", "model_encoders"]

TextFn = Callable[[list[str]], torch.Tensor]
ModalFn = Callable[[list[np.ndarray]], torch.Tensor]


def evaluate(encode_text: TextFn, encode_modal: ModalFn, modality: str, n: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """The encoder's own quality on ``n`` held-out items (``split="eval"``), as fractions.

    Reports zero-shot top-1 over the 24 classes (prompts of :func:`world.prompts_for`),
    text->modal and modal->text recall (the item's own caption is the only match), text->modal
    R@1 where any item of the caption's class counts, and the gap statistics of the
    caption/item pairs (:func:`textme_sdk.diagnostics.gap_geometry`): centroid distance, mean
    cosines of matching pairs, of non-matching cross-modal pairs and within each modality, and
    how well the direction ``mu_text - mu_modal`` alone separates the modalities.
    """
    items = world.sample_items(modality, n, seed=seed, split="eval")
    labels = torch.tensor([it.label_index for it in items])
    text = encode_text([it.caption for it in items])
    modal = encode_modal([it.data for it in items])
    own = caption_retrieval(text, modal, torch.arange(n), ks=(1, 5))
    same_class = recall_at_k(text @ modal.T, relevance_from_labels(labels, labels), (1,))
    prototypes = prompt_prototypes(encode_text, [world.prompts_for(modality, c)
                                                 for c in world.class_names()])
    zero_shot = topk_accuracy(zero_shot_predict(modal, prototypes), labels, (1,))
    gap = gap_geometry(text, modal)
    return {
        "eval_items": n,
        "eval_seed": seed,
        "zero_shot_top1": zero_shot["top1"] / 100,
        "text_to_modal_R@1": own["T->X R@1"] / 100,
        "text_to_modal_R@5": own["T->X R@5"] / 100,
        "modal_to_text_R@1": own["X->T R@1"] / 100,
        "text_to_modal_class_R@1": same_class["R@1"] / 100,
        "centroid_distance": gap.gap_norm,
        "paired_cosine": gap.paired_cosine,
        "unpaired_cross_cosine": gap.cross_cosine,
        "text_text_cosine": gap.intra_text_cosine,
        "modal_modal_cosine": gap.intra_modal_cosine,
        "gap_direction_accuracy": gap.gap_direction_accuracy,
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
