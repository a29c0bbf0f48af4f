"""The evaluation harness: hand-computed metrics on a known-gap encoder, PPR of a perfect
projector, item-embedding cache, and `textme eval` on a benchmark layout."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import textme_sdk as tm
from textme_sdk.errors import InvalidInputError, UnknownModalityError
from textme_sdk.evaluation import ClassificationSet, RetrievalSet
from textme_sdk.evaluation.harness import evaluate, item_embeddings
from textme_sdk.evaluation.metrics import caption_retrieval, recall_at_k

D = 5            # content in dims 0-2, dim 3 spare, the gap along dim 4
GAP = torch.tensor([0.0, 0, 0, 0, 1.5])
K = math.sqrt(1 + 1.5 ** 2)


def unit(*xs: float) -> torch.Tensor:
    return F.normalize(torch.tensor(xs + (0.0,) * (D - len(xs))), dim=0)


class KnownGapEncoder(tm.ModalityEncoder):
    """text -> (c + g) / k and input -> (c - g) / k for unit contents c orthogonal to g."""

    name = "known-gap"
    modality = "toy"
    embedding_dim = D

    def __init__(self, contents: dict[str, torch.Tensor], device=None):
        super().__init__(device)
        self.contents, self.modal_calls = contents, 0

    def load_model(self, device, dtype):
        pass

    def encode_text_batch(self, texts):
        return torch.stack([(self.contents[t] + GAP) / K for t in texts])

    def encode_modal_batch(self, batch):
        self.modal_calls += 1
        keys = [open(b).read() if str(b).endswith(".txt") else b for b in batch]
        return torch.stack([(self.contents[k] - GAP) / K for k in keys])

    def config(self):
        return {"contents": sorted(self.contents)}


class ContentAnchor(tm.AnchorModel):
    """The anchor space is the content space itself."""

    name = "content"
    embedding_dim = D

    def __init__(self, contents, device=None):
        super().__init__(device)
        self.contents = contents

    def load_model(self, device, dtype):
        pass

    def encode_batch(self, texts, role):
        return torch.stack([self.contents[t] for t in texts])


def identity_projector(d: int) -> tm.Projector:
    """A 2-layer GELU MLP that is exactly the identity: GELU(x) - GELU(-x) = x."""
    p = tm.Projector(d, d, hidden_dim=2 * d)
    eye = torch.eye(d)
    with torch.no_grad():
        p.net[0].weight.copy_(torch.cat([eye, -eye]))
        p.net[2].weight.copy_(torch.cat([eye, -eye], dim=1))
        p.net[0].bias.zero_()
        p.net[2].bias.zero_()
    return p


CONTENTS = {
    "i0": unit(1, 0, 0), "i1": unit(0, 1, 0), "i2": unit(0, 0, 1),
    "q0": unit(1, 0, 0), "q1": unit(0.6, 0.8, 0), "q2": unit(0.8, 0, 0.6), "q3": unit(0, 1, 0),
    "cat": unit(1, 0, 0), "dog": unit(0, 1, 0), "owl": unit(0, 0, 1),
    "a": unit(1, 0.5, 0), "b": unit(0.1, 1, 0.9), "c": unit(0.2, 0, 1), "e": unit(0.9, 0, 0.3),
}


def perfect_bundle(offsets: bool = True) -> tm.TextME:
    enc = KnownGapEncoder(CONTENTS)
    off = tm.Offsets(GAP / K, -GAP / K, 100, 100) if offsets else tm.Offsets.zeros(D)
    return tm.TextME(ContentAnchor(CONTENTS), device="cpu").add_modality(enc, identity_projector(D), off)


RETRIEVAL = RetrievalSet("hand", "toy", ["i0", "i1", "i2"], ["q0", "q1", "q2", "q3"], [0, 1, 2, 2])


def test_identity_projector_is_exact():
    x = torch.randn(7, D)
    assert torch.allclose(identity_projector(D).net(x), x, atol=1e-6)


def test_retrieval_metrics_equal_a_hand_computation():
    # caption ranks (T->X): q0 -> i0 first; q1 scores i1 .8 > i0 .6; q2 scores i0 .8 > i2 .6;
    # q3 scores i1 1 > i2 0 (tie with i0 resolved in its favour) -> ranks 0, 0, 1, 1.
    # item ranks (X->T): i0 -> q0 first; i1 -> its q1 (.8) behind q3 (1); i2 -> q2 (.6) first.
    text = torch.stack([CONTENTS[q] for q in RETRIEVAL.captions])
    items = torch.stack([CONTENTS[i] for i in RETRIEVAL.items])
    got = caption_retrieval(text, items, RETRIEVAL.caption_item, ks=(1, 2))
    assert got == pytest.approx({"T->X R@1": 50.0, "T->X R@2": 100.0, "X->T R@1": 200 / 3,
                                 "X->T R@2": 100.0, "T->X MRR@2": 75.0})


def test_chunked_retrieval_equals_the_dense_relevance_version():
    g = torch.Generator().manual_seed(3)
    items = F.normalize(torch.randn(40, 16, generator=g), dim=-1)
    own = torch.cat([torch.arange(40), torch.randint(0, 40, (60,), generator=g)])
    text = F.normalize(items[own] + 0.9 * torch.randn(100, 16, generator=g), dim=-1)
    rel = own[:, None] == torch.arange(40)[None]
    got = caption_retrieval(text, items, own, ks=(1, 5), chunk=7)
    t2x, x2t = recall_at_k(text @ items.T, rel, (1, 5)), recall_at_k(items @ text.T, rel.T, (1, 5))
    for k in (1, 5):
        assert got[f"T->X R@{k}"] == pytest.approx(t2x[f"R@{k}"])
        assert got[f"X->T R@{k}"] == pytest.approx(x2t[f"R@{k}"])


def test_perfect_projector_keeps_everything_ppr_100():
    report = evaluate(perfect_bundle(), RETRIEVAL, text_via="both", ablation=perfect_bundle(False),
                      cache=False, ks=(1, 2))
    assert set(report.metrics) == {"pretrained", "textme", "textme_via_encoder", "no_offsets", "naive"}
    hand = {"T->X R@1": 50.0, "T->X R@2": 100.0, "X->T R@1": 200 / 3, "X->T R@2": 100.0,
            "T->X MRR@2": 75.0}
    for system in ("pretrained", "textme", "textme_via_encoder"):
        assert report.metrics[system] == pytest.approx(hand), system
    assert report.ppr == pytest.approx({k: 100.0 for k in hand})
    md = report.to_markdown()
    assert "| TextME | 50.0 | 100.0 | 66.7 |" in md and "PPR" in md
    assert json.loads(report.to_json())["ppr"]["T->X R@1"] == pytest.approx(100.0)


def test_zero_shot_classification_by_hand_and_binary_auroc_f1():
    # items a, b, c, e against classes cat, dog, owl (one template "{}"):
    # a -> cat (1 > .5), b -> dog (1 > .9), c -> owl, e -> cat; labels cat, owl, owl, owl
    data = ClassificationSet("zs", "toy", ["a", "b", "c", "e"], ["cat", "dog", "owl"],
                             torch.tensor([0, 2, 2, 2]))
    report = evaluate(perfect_bundle(), data, templates=["{}"], cache=False)
    assert report.metrics["pretrained"] == pytest.approx({"top1": 50.0})
    assert report.metrics["textme"] == pytest.approx({"top1": 50.0})
    assert report.ppr["top1"] == pytest.approx(100.0)
    # binary: score = sim(owl) - sim(cat): a -.89 (neg), b +.59, c +.79, e -.63 (pos label)
    binary = ClassificationSet("bin", "toy", ["a", "b", "c", "e"], ["cat", "owl"],
                               torch.tensor([0, 1, 1, 1]))
    r = evaluate(perfect_bundle(), binary, templates=["{}"], cache=False)
    # AUROC: positives b, c beat a; e (-.63) beats a (-.89) -> 3/3 = 100
    # F1 of "owl": predicted positive b, c; tp 2, fn 1 (e), fp 0 -> 2*2/(4+1) = 80
    assert r.metrics["textme"] == pytest.approx({"top1": 75.0, "AUROC": 100.0, "F1": 80.0})


def test_retrieval_with_the_dataset_relevance_matrix():
    # RETRIEVAL with q1 also describing i0: its rank-0 hit is now i1 (.8) or i0 (.6) -> still 0;
    # q2 (.8 to i0, .6 to i2) becomes a hit at 1 once i0 counts for it too. X->T: i0 is now
    # described by q0, q1, q2 (best q0, rank 0); i1 and i2 as before (ranks 1 and 0).
    wide = RETRIEVAL.relevance()
    wide[1, 0] = wide[2, 0] = True
    data = RetrievalSet("wide", "toy", RETRIEVAL.items, RETRIEVAL.captions, RETRIEVAL.caption_item,
                        relevant=wide)
    report = evaluate(perfect_bundle(), data, cache=False, ks=(1, 2))
    hand = {"T->X R@1": 75.0, "T->X R@2": 100.0, "X->T R@1": 200 / 3, "X->T R@2": 100.0,
            "T->X MRR@2": 87.5}
    for system in ("pretrained", "textme"):
        assert report.metrics[system] == pytest.approx(hand), system
    assert any("relevance: the dataset's matrix (6 relevant" in n for n in report.notes)


def test_zero_shot_uses_the_dataset_prompts_unless_templates_are_given():
    # the dataset's prompts swap cat and owl: the "cat" prototype is the content of "owl"
    data = ClassificationSet("zs", "toy", ["a", "b", "c", "e"], ["cat", "dog", "owl"],
                             torch.tensor([0, 2, 2, 2]), prompts=[["owl"], ["dog"], ["cat"]])
    swapped = evaluate(perfect_bundle(), data, cache=False)
    by_name = evaluate(perfect_bundle(), data, templates=["{}"], cache=False)
    # with the class names (as in test_zero_shot_classification_by_hand): a, e -> cat, b -> dog,
    # c -> owl: 50%. With the swapped prompts: a -> owl (label cat: miss), b -> dog (miss),
    # c -> cat (miss), e -> owl (hit) -> 25%.
    assert by_name.metrics["textme"] == pytest.approx({"top1": 50.0})
    assert swapped.metrics["textme"] == pytest.approx({"top1": 25.0})
    assert swapped.metrics["pretrained"] == pytest.approx({"top1": 25.0})
    assert any("the dataset's own, 1 per class x 3 classes" in n for n in swapped.notes)
    assert any("1 templates x 3 classes" in n for n in by_name.notes)


def test_multilabel_map():
    data = ClassificationSet("ml", "toy", ["a", "b", "c"], ["cat", "dog", "owl"],
                             torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.bool),
                             multilabel=True)
    r = evaluate(perfect_bundle(), data, templates=["{}"], cache=False)
    # per class AP: cat: a (.89) first -> 1; dog: b (.74), a (.45) above c (0) -> 1;
    # owl: c (.98), b (.67) above a (0) -> 1
    assert r.metrics["textme"]["mAP"] == pytest.approx(100.0)


def test_item_embeddings_are_cached_by_file_identity(tmp_path):
    files = []
    for name in ("i0", "i1", "i2"):
        f = tmp_path / f"{name}.txt"
        f.write_text(name)
        files.append(str(f))
    enc = KnownGapEncoder(CONTENTS)
    first = item_embeddings(enc, files, cache=tmp_path / "cache")
    calls = enc.modal_calls
    again = item_embeddings(enc, files, cache=tmp_path / "cache")
    assert enc.modal_calls == calls and torch.allclose(first, again, atol=1e-3)
    (tmp_path / "i1.txt").write_text("i2")  # the file changed: its identity changes too
    changed = item_embeddings(enc, files, cache=tmp_path / "cache")
    assert enc.modal_calls > calls and torch.allclose(changed[1], changed[2], atol=1e-3)


def test_bad_options_raise_typed_errors():
    with pytest.raises(InvalidInputError, match="text_via"):
        evaluate(perfect_bundle(), RETRIEVAL, text_via="llm", cache=False)
    with pytest.raises(UnknownModalityError):
        evaluate(perfect_bundle(), RETRIEVAL, modality="audio", cache=False)
    data = ClassificationSet("zs", "toy", ["a"], ["cat"], torch.tensor([0]))
    with pytest.raises(InvalidInputError, match="exactly one"):
        evaluate(perfect_bundle(), data, templates=["a {} and {}"], cache=False)


def test_cli_eval_on_a_karpathy_layout_with_a_trained_bundle(tmp_path, minilm):
    """`textme train` twice (with and without offsets), then `textme eval --task flickr30k`."""
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from textme_reference import world
    from textme_sdk.cli import get_app

    runner = CliRunner()
    (tmp_path / "texts.txt").write_text("\n".join(world.caption_corpus("image", 1500, seed=5)))
    unpaired = tmp_path / "unpaired"
    unpaired.mkdir()
    for i, it in enumerate(world.sample_items("image", 200, 0, "unpaired")):
        Image.fromarray(it.data).save(unpaired / f"{i}.png")
    for out, extra in (("bundle", []), ("ablation", ["--no-offsets"])):
        res = runner.invoke(get_app(), ["train", "ref-image", "--texts", str(tmp_path / "texts.txt"),
                                        "--inputs", str(unpaired), "--out", str(tmp_path / out),
                                        "--epochs", "6", "--batch-size", "256", *extra])
        assert res.exit_code == 0, res.output
    data = tmp_path / "flickr30k"
    (data / "flickr30k-images").mkdir(parents=True)
    images = []
    for i, it in enumerate(world.sample_items("image", 60, 1, "eval")):
        name = f"{i}.png"
        Image.fromarray(np.asarray(it.data)).save(data / "flickr30k-images" / name)
        images.append({"filename": name, "split": "test", "sentences": [{"raw": it.caption}]})
    (data / "dataset_flickr30k.json").write_text(json.dumps({"images": images}))
    res = runner.invoke(get_app(), ["eval", str(tmp_path / "bundle"), "--task", "flickr30k",
                                    "--data", str(data), "--ablation", str(tmp_path / "ablation"),
                                    "--text-via", "both", "--json", str(tmp_path / "r.json"),
                                    "--markdown", str(tmp_path / "r.md")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["n_items"] == 60 and report["n_texts"] == 60
    assert set(report["metrics"]) == {"pretrained", "textme", "textme_via_encoder", "no_offsets", "naive"}
    chance_r5 = 100 * 5 / 60
    assert report["metrics"]["pretrained"]["T->X R@5"] > 2 * chance_r5
    assert report["metrics"]["textme"]["T->X R@5"] > 2 * chance_r5  # text-only training works
    assert report["ppr"]["T->X R@5"] == pytest.approx(
        100 * report["metrics"]["textme"]["T->X R@5"] / report["metrics"]["pretrained"]["T->X R@5"])
    assert "| TextME |" in (tmp_path / "r.md").read_text()
    assert "PPR" in res.output
