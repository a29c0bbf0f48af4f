"""The reference world's samples as evaluation datasets of textme-sdk.

Held-out items (:func:`~textme_reference.world.sample_items` with ``split="eval"``) become a
:class:`~textme_sdk.evaluation.RetrievalSet` or a :class:`~textme_sdk.evaluation.ClassificationSet`,
so that :func:`textme_sdk.evaluation.evaluate` scores the reference world exactly as it scores a
public benchmark. Example::

    from textme_sdk.evaluation import evaluate
    from textme_reference import datasets, world

    items = world.sample_items("audio", 500, seed=0, split="eval")
    report = evaluate(bundle, datasets.retrieval_set(items), cache=False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from textme_sdk.errors import InvalidInputError
from textme_sdk.evaluation import ClassificationSet, RetrievalSet, relevance_from_labels

from . import world
from .world import Item

__all__ = ["Relevance", "classification_set", "retrieval_set"]

#: How captions are matched to samples in :func:`retrieval_set`.
Relevance = Literal["describes", "exact"]


def _modality(items: Sequence[Item]) -> str:
    if not items:
        raise InvalidInputError("no items; pass e.g. world.sample_items('image', 1000, split='eval')")
    kinds = {it.modality for it in items}
    if len(kinds) != 1:
        raise InvalidInputError(f"items of one modality only, got {sorted(kinds)}")
    return kinds.pop()


def retrieval_set(items: Sequence[Item], relevance: Relevance = "describes",
                  name: str | None = None) -> RetrievalSet:
    """Each item with its own caption; which samples count as right for a caption.

    Args:
        items: samples of one modality (their ``caption`` is the query text).
        relevance: ``"describes"`` - a caption is relevant to every item it truly describes:
            same class, equal on each attribute it states
            (:func:`~textme_reference.world.caption_relevance`), so "the sound of a dog" is right
            for every dog clip; ``"exact"`` - only to items whose own caption is the identical
            string. Both directions (caption -> sample, sample -> caption) use the same matrix.
        name: the dataset name (default ``reference-<modality>-<relevance>``).
    """
    modality = _modality(items)
    captions = [it.caption for it in items]
    if relevance == "describes":
        relevant = torch.from_numpy(world.caption_relevance(items, items))
    elif relevance == "exact":
        index = {c: i for i, c in enumerate(captions)}  # one id per distinct caption
        ids = [index[c] for c in captions]
        relevant = relevance_from_labels(ids, ids)
    else:
        raise InvalidInputError(f"relevance must be 'describes' or 'exact', got {relevance!r}")
    return RetrievalSet(name or f"reference-{modality}-{relevance}", modality,
                        [it.data for it in items], captions, list(range(len(items))),
                        relevant=relevant)


def classification_set(items: Sequence[Item], name: str | None = None) -> ClassificationSet:
    """The items labelled with the world's 24 classes, with the world's zero-shot prompts
    (:func:`~textme_reference.world.prompts_for`: "an image of an owl", ...)."""
    modality = _modality(items)
    classes = world.class_names()
    return ClassificationSet(name or f"reference-{modality}-classes", modality,
                             [it.data for it in items], classes,
                             torch.tensor([it.label_index for it in items]),
                             prompts=[world.prompts_for(modality, c) for c in classes])
