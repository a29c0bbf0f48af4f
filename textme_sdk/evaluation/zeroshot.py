"""Zero-shot classification from class names and prompt templates."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

__all__ = ["class_prototypes", "zero_shot_predict"]


def class_prototypes(
    embed_texts: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str] = ("{}",),
) -> torch.Tensor:
    """One embedding per class: the templates filled with the class name, embedded, averaged
    and re-normalised (the CLIP protocol). ``embed_texts`` returns ``[n, d]``."""
    prompts = [t.format(c) for c in class_names for t in templates]
    emb = torch.as_tensor(embed_texts(prompts), dtype=torch.float32)
    emb = F.normalize(emb, dim=-1).reshape(len(class_names), len(templates), -1).mean(1)
    return F.normalize(emb, dim=-1)


def zero_shot_predict(item_embeddings: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine logits ``[N, C]`` of items against class prototypes."""
    return F.normalize(torch.as_tensor(item_embeddings, dtype=torch.float32), dim=-1) @ prototypes.T
