"""A small text world for the synthetic gap encoder: class names and descriptions."""

from __future__ import annotations

import random

CLASSES = [
    "dog", "cat", "horse", "bird", "fish", "car", "truck", "bicycle", "airplane", "boat",
    "guitar", "piano", "drum", "violin", "apple", "banana", "pizza", "bread", "chair", "table",
    "lamp", "clock", "phone", "tree", "flower", "mountain", "river", "house", "bridge", "train",
]
ADJECTIVES = ["red", "small", "large", "old", "new", "shiny", "dark", "bright", "wooden", "blue"]
PLACES = ["park", "street", "kitchen", "field", "room", "city", "garden", "beach"]
TEMPLATES = [
    "a photo of a {c}", "a {a} {c}", "a {c} in the {p}", "the {a} {c} near the {p}",
    "an image showing a {c}", "a close-up picture of a {a} {c}", "{c}", "there is a {c} here",
]


def descriptions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        rng.choice(TEMPLATES).format(c=rng.choice(CLASSES), a=rng.choice(ADJECTIVES),
                                     p=rng.choice(PLACES))
        for _ in range(n)
    ]


def modal_samples(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(CLASSES)}#{rng.randrange(10**6)}" for _ in range(n)]


def labelled_eval(per_class: int = 8) -> tuple[list[str], list[int]]:
    items, labels = [], []
    for ci, c in enumerate(CLASSES):
        for k in range(per_class):
            items.append(f"{c}#eval{k}")
            labels.append(ci)
    return items, labels
