"""Zero-shot classification from class names and prompt templates.

Every zero-shot number of the package (the harness, the reference world's encoders and demo)
builds its class prototypes with :func:`prompt_prototypes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from ..errors import InvalidInputError

__all__ = ["class_prototypes", "prompt_prototypes", "zero_shot_predict"]


def prompt_prototypes(
    embed_texts: Callable[[list[str]], torch.Tensor],
    prompts: Sequence[Sequence[str]],
) -> torch.Tensor:
    """One embedding per class from its own prompts: embedded, averaged and re-normalised.

    ``prompts[c]`` are the texts that stand for class ``c`` ("a photo of a dog", "a picture of
    a dog", ...); classes may have different numbers of prompts. All prompts are embedded in one
    ``embed_texts`` call, which returns ``[n, d]``; each embedding is L2-normalised before the
    average (the CLIP protocol).

    Returns:
        ``[n_classes, d]`` float32, L2-normalised rows.

    Raises:
        InvalidInputError: no classes, or a class without prompts.
    """
    counts = [len(p) for p in prompts]
    if not counts or min(counts) == 0:
        raise InvalidInputError(
            "every class needs at least one prompt; got "
            + ("no classes" if not counts else f"none for class {counts.index(0)}"))
    flat = [text for per_class in prompts for text in per_class]
    emb = F.normalize(torch.as_tensor(embed_texts(flat), dtype=torch.float32), dim=-1)
    if len(set(counts)) == 1:  # the same number of prompts per class
        emb = emb.reshape(len(counts), counts[0], -1).mean(1)
    else:
        emb = torch.stack([e.mean(0) for e in emb.split(counts)])
    return F.normalize(emb, dim=-1)


def class_prototypes(
    embed_texts: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: Sequence[str] = ("{}",),
) -> torch.Tensor:
    """One embedding per class: the templates filled with the class name, embedded, averaged
    and re-normalised (the CLIP protocol). ``embed_texts`` returns ``[n, d]``.

    The same as :func:`prompt_prototypes` with ``[[t.format(c) for t in templates] for c in
    class_names]``.
    """
    return prompt_prototypes(embed_texts, [[t.format(c) for t in templates] for c in class_names])


def zero_shot_predict(item_embeddings: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine logits ``[N, C]`` of items against class prototypes."""
    return F.normalize(torch.as_tensor(item_embeddings, dtype=torch.float32), dim=-1) @ prototypes.T
