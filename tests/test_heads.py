"""Few-shot classifier heads (UML): loss, initialisation, balance, storage, bundles, errors."""

import json
import math

import pytest
import torch
from torch.nn import functional as F

import textme_sdk as tm
from textme_sdk.heads import ClassifierHead, HeadConfig, fit_head_on_embeddings, uml_loss

from gapworld import CLASSES


# ------------------------------------------------------------------ hand-checked tiny case
def _ce(logits, y):
    """Cross-entropy of one row by hand."""
    return -logits[y] + math.log(sum(math.exp(v) for v in logits))


def test_initial_head_is_the_normalised_class_mean_of_the_texts():
    texts = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]])  # two of class a, one of b
    head = fit_head_on_embeddings({"m": (torch.tensor([[1.0, 0.0]]), [0])},
                                  (texts, [0, 0, 1]), ["a", "b"], 1.0, HeadConfig(steps=0))
    # class a: mean of the normalised texts (1, 0) and (0.6, 0.8) = (0.8, 0.4), then normalised
    n = math.hypot(0.8, 0.4)
    assert head.weight.flatten().tolist() == pytest.approx([0.8 / n, 0.4 / n, 0.0, 1.0], abs=1e-6)
    assert head.predict(torch.tensor([[1.0, 0.1], [0.1, 1.0]])) == ["a", "b"]
    assert head.logits(torch.tensor([3.0, 0.0])).tolist() == pytest.approx(
        [100 * 0.8 / n, 0.0], abs=1e-4)  # inputs are normalised, scale 100


def test_uml_loss_matches_the_hand_computation():
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x = torch.tensor([[0.6, 0.8]])  # shot of class 0
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # texts of classes 0 and 1
    loss = uml_loss(w, [(2.0, x, torch.tensor([0]), None)],
                    (1.0, t, torch.tensor([0, 1]), None), text_weight=0.5)
    modal = _ce([1.2, 1.6], 0)
    text = (_ce([1.0, 0.0], 0) + _ce([0.0, 1.0], 1)) / 2
    assert float(loss) == pytest.approx(modal + 0.5 * text, rel=1e-6)
    only_modal = uml_loss(w, [(2.0, x, torch.tensor([0]), None)],
                          (1.0, t, torch.tensor([0, 1]), None), text_weight=0.0)
    assert float(only_modal) == pytest.approx(modal, rel=1e-6)


def test_class_balanced_loss_weighs_every_class_the_same():
    """Three shots of class 0 and one of class 1: the balanced loss is the mean of the two
    classes' losses, not the mean over the four shots."""
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x = F.normalize(torch.tensor([[1.0, 0.2], [1.0, 0.2], [1.0, 0.2], [0.9, 1.0]]), dim=-1)
    y = torch.tensor([0, 0, 0, 1])
    from textme_sdk.heads import _class_weights

    balanced = uml_loss(w, [(1.0, x, y, _class_weights(y, 2))], None, 0.0)
    per = [_ce((x[i] @ w.T).tolist(), int(y[i])) for i in range(4)]
    assert float(balanced) == pytest.approx((per[0] + per[3]) / 2, rel=1e-5)
    plain = uml_loss(w, [(1.0, x, y, None)], None, 0.0)
    assert float(plain) == pytest.approx(sum(per) / 4, rel=1e-5)
    assert _class_weights(y, 3).tolist() == pytest.approx([1 / 3, 1.0, 0.0])


def test_imbalanced_shots_do_not_drown_the_minority_class():
    """20 shots of a spread-out class a, one of b: a random-init probe still finds b, because
    the loss is class balanced (an unbalanced loss would push the boundary onto b's shot)."""
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.tensor([1.0, 0.0, 0.0]) + 0.5 * torch.randn(20, 3, generator=g), dim=-1)
    b = torch.tensor([[0.2, 1.0, 0.0]])
    head = fit_head_on_embeddings({"m": (torch.cat([a, b]), [0] * 20 + [1])}, None, ["a", "b"],
                                  0.0, HeadConfig(init="random", steps=150, lr=0.05,
                                                  logit_scale=10.0))
    near_b = F.normalize(b + 0.05 * torch.randn(10, 3, generator=g), dim=-1)
    assert head.predict(near_b) == ["b"] * 10
    assert head.info["balance"].startswith("class-balanced")


def test_text_pulls_a_one_shot_head_towards_the_right_classes():
    """One noisy shot per class plus clean texts: UML beats the modal-only probe."""
    g = torch.Generator().manual_seed(1)
    C, d = 6, 16
    protos = F.normalize(torch.randn(C, d, generator=g), dim=-1)
    shots = F.normalize(protos + 0.9 * torch.randn(C, d, generator=g), dim=-1)
    test = F.normalize(protos.repeat(20, 1) + 0.9 * torch.randn(20 * C, d, generator=g), dim=-1)
    labels = torch.arange(C).repeat(20)
    texts = F.normalize(protos + 0.1 * torch.randn(C, d, generator=g), dim=-1)
    names = [str(i) for i in range(C)]
    cfg = HeadConfig(steps=100, logit_scale=10.0, lr=0.01)
    uml = fit_head_on_embeddings({"m": (shots, range(C))}, (texts, range(C)), names, 1.0, cfg)
    probe = fit_head_on_embeddings({"m": (shots, range(C))}, None, names, 0.0,
                                   HeadConfig(steps=100, logit_scale=10.0, lr=0.01, init="random"))

    def acc(h):
        return float((h.logits(test).argmax(-1) == labels).float().mean())

    assert acc(uml) > acc(probe)


def test_learnable_scales_and_early_stopping_are_recorded():
    g = torch.Generator().manual_seed(2)
    x = F.normalize(torch.randn(12, 4, generator=g), dim=-1)
    y = [0, 1, 2] * 4
    head = fit_head_on_embeddings({"m": (x, y)}, (x[:3], [0, 1, 2]), ["a", "b", "c"], 0.5,
                                  HeadConfig(logit_scale=None, steps=20, val_fraction=0.25,
                                             eval_every=5))
    assert set(head.scales) == {"m", "text", "default"}
    assert head.info["validation_shots"] == {"m": 3}
    assert 5 <= head.info["best_step"] <= 20 and "best_val_accuracy" in head.info


# ----------------------------------------------------------------------------- fit_head
@pytest.fixture
def model(gapdemo, minilm):
    enc = tm.get_encoder("gapdemo", dim=16)
    texts = [f"a photo of a {c}" for c in CLASSES]
    offsets = tm.Offsets.from_embeddings(enc.encode_text(texts),
                                         enc.encode_modal([f"{c}#u" for c in CLASSES]))
    torch.manual_seed(0)
    m = tm.TextME(minilm)
    m.add_modality(enc, tm.Projector(16, 384), offsets)
    m.add_modality(enc, tm.Projector(16, 384), offsets, name="other")
    return m


SHOT_CLASSES = ["dog", "cat", "car", "piano"]


def _shots(k=2):
    items = [f"{c}#{i}" for c in SHOT_CLASSES for i in range(k)]
    return items, [c for c in SHOT_CLASSES for _ in range(k)]


def test_fit_head_in_the_encoder_space_classifies_its_modality(model):
    items, labels = _shots()
    head = tm.fit_head(model, items, labels, "gapdemo", space="encoder",
                       config=HeadConfig(steps=50))
    assert head.classes == sorted(SHOT_CLASSES) and head.space == "encoder"
    test = [f"{c}#t{i}" for c in SHOT_CLASSES for i in range(5)]
    pred = head.classify(model, test, "gapdemo")
    assert pred == [c for c in SHOT_CLASSES for _ in range(5)]
    with pytest.raises(tm.HeadMismatchError, match="encoder space"):
        head.classify(model, test, "other")


def test_fit_head_accepts_dicts_and_triples_and_the_anchor_head_crosses_modalities(model):
    items, labels = _shots()
    by_dict = tm.fit_head(model, {"gapdemo": items}, {"gapdemo": labels},
                          config=HeadConfig(steps=5))
    by_triples = tm.fit_head(model, [(x, y, "gapdemo") for x, y in zip(items, labels)],
                             config=HeadConfig(steps=5))
    assert torch.allclose(by_dict.weight, by_triples.weight)
    # gapdemo's domain ("concept") has no templates: the fallback prompts "a {}." and "{}"
    assert by_dict.info["class_texts"] == len(SHOT_CLASSES) * 2
    mixed = tm.fit_head(model, {"gapdemo": items[:4], "other": items[4:]},
                        {"gapdemo": labels[:4], "other": labels[4:]}, config=HeadConfig(steps=5))
    assert mixed.info["shots"] == {"gapdemo": 4, "other": 4}
    assert len(by_dict.classify(model, ["dog#9", "car#9"], "other")) == 2  # cross-modal


def test_fit_head_typed_errors(model):
    items, labels = _shots()
    with pytest.raises(tm.InvalidInputError, match="no shot has"):
        tm.fit_head(model, items, labels, "gapdemo", texts=[("a zebra", "zebra")])
    with pytest.raises(tm.InvalidInputError, match="without shots"):
        tm.fit_head(model, items, labels, "gapdemo",
                    class_texts={**{c: [c] for c in SHOT_CLASSES}, "zebra": ["a zebra"]})
    with pytest.raises(tm.InvalidInputError, match="shots but no text"):
        tm.fit_head(model, items, labels, "gapdemo", class_texts={"dog": ["a dog"]})
    with pytest.raises(tm.InvalidInputError, match="shots but no text"):
        tm.fit_head(model, items, labels, "gapdemo",
                    class_texts={**{c: [c] for c in SHOT_CLASSES}, "cat": []})
    with pytest.raises(tm.InvalidInputError, match="empty label"):
        tm.fit_head(model, items, labels[:-1] + [""], "gapdemo")
    with pytest.raises(tm.EmptyInputError):
        tm.fit_head(model, [], [], "gapdemo")
    with pytest.raises(tm.InvalidInputError, match="one label per input"):
        tm.fit_head(model, items, labels[:-1], "gapdemo")
    with pytest.raises(tm.UnknownModalityError):
        tm.fit_head(model, items, labels, "audio")
    with pytest.raises(tm.InvalidInputError, match="space"):
        tm.fit_head(model, items, labels, "gapdemo", space="pixels")
    with pytest.raises(tm.InvalidInputError, match="one encoder"):
        tm.fit_head(model, {"gapdemo": items, "other": items}, {"gapdemo": labels, "other": labels},
                    space="encoder")
    with pytest.raises(tm.InvalidInputError, match="HeadConfig.lr"):
        HeadConfig(lr=-1)


def test_head_refuses_other_dimensions_and_other_bundles(model, gapdemo, minilm):
    items, labels = _shots()
    head = tm.fit_head(model, items, labels, "gapdemo", config=HeadConfig(steps=5))
    with pytest.raises(tm.DimensionMismatchError, match="384-d"):
        head.predict(torch.zeros(2, 16))
    with pytest.raises(tm.InvalidEmbeddingError):
        head.predict(torch.full((1, 384), float("nan")))
    enc = tm.get_encoder("gapdemo", dim=16)
    torch.manual_seed(5)
    retrained = tm.TextME(minilm).add_modality(enc, tm.Projector(16, 384),
                                               model.entry("gapdemo").offsets)
    with pytest.raises(tm.HeadMismatchError, match="not the one the head was fitted with"):
        head.classify(retrained, items, "gapdemo")


# -------------------------------------------------------------------------------- storage
def test_head_round_trip_is_identical(model, tmp_path):
    items, labels = _shots()
    head = tm.fit_head(model, items, labels, "gapdemo",
                       config=HeadConfig(steps=10, logit_scale=None))
    out = head.save_pretrained(tmp_path / "head")
    back = tm.ClassifierHead.from_pretrained(out)
    assert torch.equal(back.weight, head.weight)
    assert back.classes == head.classes and back.scales == head.scales
    assert back.bundle == json.loads(json.dumps(head.bundle)) and back.space == head.space
    x = model.embed(items, "gapdemo")
    assert torch.equal(back.logits(x), head.logits(x))
    head.save_pretrained(out)  # replacing a head is fine
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "head.safetensors"]


def test_damaged_or_foreign_heads_are_refused(model, tmp_path):
    items, labels = _shots()
    head = tm.fit_head(model, items, labels, "gapdemo", config=HeadConfig(steps=2))
    out = head.save_pretrained(tmp_path / "head")
    blob = (out / "head.safetensors").read_bytes()
    (out / "head.safetensors").write_bytes(blob[:-4] + b"\0\0\0\0")
    with pytest.raises(tm.BundleIntegrityError):
        ClassifierHead.from_pretrained(out)
    with pytest.raises(tm.MissingFileError, match="not a classifier head"):
        ClassifierHead.from_pretrained(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(tm.OutputExistsError):
        head.save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    cfg = json.loads((out / "config.json").read_text())
    cfg["classes"] = ["dup", "dup", "x", "y"]
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(tm.BundleFormatError, match="classes"):
        ClassifierHead.from_pretrained(out)


def test_heads_travel_with_the_bundle(model, tmp_path):
    plain = model.save_pretrained(tmp_path / "plain")
    assert "heads" not in json.loads((plain / "config.json").read_text())
    assert tm.TextME.from_pretrained(plain).heads == {}

    items, labels = _shots()
    head = tm.fit_head(model, items, labels, "gapdemo", config=HeadConfig(steps=3))
    model.add_head("pets", head)
    folder = model.save_pretrained(tmp_path / "b")
    assert json.loads((folder / "config.json").read_text())["heads"] == {"pets": {"path": "heads/pets"}}
    back = tm.TextME.from_pretrained(folder)
    assert torch.equal(back.heads["pets"].weight, head.weight)
    assert back.heads["pets"].classify(back, ["dog#7"], "gapdemo") == head.classify(model, ["dog#7"], "gapdemo")
    back.heads["pets"] = tm.fit_head(model, items, labels, "gapdemo", config=HeadConfig(steps=9))
    back.save_pretrained(folder)  # the old head's files are the library's: replaced, no clash
    again = tm.TextME.from_pretrained(folder)
    assert torch.equal(again.heads["pets"].weight, back.heads["pets"].weight)
    with pytest.raises(tm.DimensionMismatchError):
        model.add_head("bad", ClassifierHead(torch.ones(2, 7), ["a", "b"]))
    with pytest.raises(tm.InvalidInputError):
        model.add_head("../x", head)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["heads"] = {"pets": {"path": "../elsewhere"}}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(tm.BundleFormatError, match="heads"):
        tm.TextME.from_pretrained(folder)
