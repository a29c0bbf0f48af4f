"""Train and use a bundle with a synthetic encoder (offline, ~30 s on CPU).

Needs the test plugin ``textme-gapdemo`` (``pip install tests/fixtures/textme-gapdemo``), a
two-branch encoder with a built-in modality gap. Shows the whole public path: offsets from
unpaired samples, a projector trained on text only, save, reload, zero-shot classification.
"""

from __future__ import annotations

import random
import sys
import tempfile

import numpy as np

import textme_sdk as tm

CLASSES = ["dog", "cat", "car", "guitar", "apple", "tree", "boat", "clock", "chair", "bird"]
TEMPLATES = ["a photo of a {c}", "a {a} {c}", "a {c} in the {p}", "{c}", "the {a} {c} near the {p}"]


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(TEMPLATES).format(c=rng.choice(CLASSES), a=rng.choice(["red", "old", "small"]),
                                         p=rng.choice(["park", "room", "street"])) for _ in range(n)]


def main(epochs: int = 30) -> float:
    encoder, anchor = tm.get_encoder("gapdemo"), tm.get_anchor("minilm")
    unpaired = [f"{random.Random(i).choice(CLASSES)}#{i}" for i in range(500)]
    offsets = tm.compute_offsets(encoder, texts(500, seed=1), unpaired)
    projector = tm.train_projector(encoder, anchor, texts(1500, seed=2), offsets,
                                   tm.TrainConfig(epochs=epochs, batch_size=128, lr=1e-3))
    model = tm.TextME(anchor).add_modality(encoder, projector, offsets)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        model = tm.TextME.from_pretrained(tmp)
        items = [f"{c}#test{k}" for c in CLASSES for k in range(5)]
        x = model.embed(items, modality="gapdemo")
        t = model.embed([f"a photo of a {c}" for c in CLASSES], modality="text")
        pred = model.similarity(x, t).argmax(1)
        acc = float((pred == np.repeat(np.arange(len(CLASSES)), 5)).mean())
    print(f"gap {offsets.gap:.2f}; zero-shot top-1 over {len(CLASSES)} classes: {acc:.2%}")
    return acc


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
