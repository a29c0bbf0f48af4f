import math

import pytest
import torch

from textme_sdk.errors import InvalidInputError
from textme_sdk.evaluation import (
    auroc,
    average_precision,
    caption_retrieval,
    class_prototypes,
    mrr,
    ppr,
    prompt_prototypes,
    recall_at_k,
    relevance_retrieval,
    topk_accuracy,
    zero_shot_predict,
)
from textme_sdk.evaluation.metrics import relevance_from_labels


def _loop_recall(sim, rel, k):
    hits = 0
    for i in range(sim.shape[0]):
        top = sim[i].argsort(descending=True)[:k]
        hits += bool(rel[i, top].any())
    return 100 * hits / sim.shape[0]


def test_recall_matches_a_loop_with_multiple_positives():
    g = torch.Generator().manual_seed(0)
    sim = torch.randn(50, 200, generator=g)
    rel = torch.rand(50, 200, generator=g) < 0.02
    rel[0] = False
    rel[0, 5] = True
    got = recall_at_k(sim, rel, (1, 5, 10))
    for k in (1, 5, 10):
        assert got[f"R@{k}"] == pytest.approx(_loop_recall(sim, rel, k))


def test_topk_and_mrr():
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    labels = torch.tensor([0, 2, 0])
    acc = topk_accuracy(logits, labels, (1, 2))
    assert acc == {"top1": pytest.approx(100 / 3), "top2": pytest.approx(200 / 3)}
    rel = torch.nn.functional.one_hot(labels, 3).bool()
    assert mrr(logits, rel) == pytest.approx(100 * (1 + 1 / 2 + 1 / 3) / 3)
    assert mrr(logits, rel, k=1) == pytest.approx(100 / 3)


def test_average_precision_and_auroc():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    targets = torch.tensor([1, 0, 1, 0])
    assert average_precision(scores, targets).item() == pytest.approx((1 + 2 / 3) / 2)
    assert auroc(scores, targets) == pytest.approx(0.75)
    assert auroc(torch.tensor([0.5, 0.5]), torch.tensor([1, 0])) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        auroc(scores, torch.ones(4))
    assert math.isnan(average_precision(torch.rand(4, 2), torch.zeros(4, 2))[0].item())


def test_relevance_ppr_and_prototypes():
    assert relevance_from_labels([0, 1], [1, 0, 1]).tolist() == [[False, True, False], [True, False, True]]
    assert ppr(40, 80) == 50 and math.isnan(ppr(1, 0))
    table = {"a dog": [1.0, 0.0], "the dog": [0.8, 0.6], "a cat": [0.0, 1.0], "the cat": [0.0, 1.0]}
    protos = class_prototypes(lambda ps: torch.tensor([table[p] for p in ps]), ["dog", "cat"], ["a {}", "the {}"])
    assert protos.shape == (2, 2) and torch.allclose(protos.norm(dim=1), torch.ones(2))
    assert protos[0, 0] > protos[0, 1]


def _unit_rows(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_relevance_retrieval_matches_loops_in_both_directions():
    text, items = _unit_rows(30, 8, 0), _unit_rows(20, 8, 1)
    rel = torch.rand(30, 20, generator=torch.Generator().manual_seed(2)) < 0.1
    rel[3] = False          # a caption that describes nothing: left out of text->X
    rel[:, 7] = False       # an item no caption describes: left out of X->text
    got = relevance_retrieval(text, items, rel, ks=(1, 5))
    sim = text @ items.T
    t2x, x2t = rel.any(1), rel.any(0)
    for k in (1, 5):
        assert got[f"T->X R@{k}"] == pytest.approx(_loop_recall(sim[t2x], rel[t2x], k))
        assert got[f"X->T R@{k}"] == pytest.approx(_loop_recall(sim.T[x2t], rel.T[x2t], k))
    assert got["T->X MRR@5"] == pytest.approx(mrr(sim[t2x], rel[t2x], k=5))
    assert relevance_retrieval(text, items, rel, ks=(1, 5), chunk=7) == pytest.approx(got)


def test_relevance_retrieval_of_own_items_is_caption_retrieval():
    items = _unit_rows(25, 6, 3)
    own = torch.cat([torch.arange(25), torch.randint(0, 25, (15,), generator=torch.Generator().manual_seed(4))])
    text = torch.nn.functional.normalize(items[own] + 0.8 * _unit_rows(40, 6, 5), dim=-1)
    rel = own[:, None] == torch.arange(25)[None]
    assert relevance_retrieval(text, items, rel, ks=(1, 5)) == pytest.approx(
        caption_retrieval(text, items, own, ks=(1, 5)))
    with pytest.raises(ValueError, match="must be"):
        relevance_retrieval(text, items, rel.T)


def test_prompt_prototypes_average_each_class_own_prompts():
    table = {"a dog": [1.0, 0.0], "the dog": [0.8, 0.6], "a puppy": [0.6, 0.8], "a cat": [0.0, 2.0]}
    embed = lambda ps: torch.tensor([table[p] for p in ps])  # noqa: E731
    protos = prompt_prototypes(embed, [["a dog", "the dog", "a puppy"], ["a cat"]])  # ragged
    want = torch.nn.functional.normalize(torch.tensor([[2.4 / 3, 1.4 / 3], [0.0, 1.0]]), dim=-1)
    torch.testing.assert_close(protos, want)
    # templates are prompts filled with the class name: the same prototypes
    cats = {**table, "the cat": [0.0, 1.0]}
    embed_all = lambda ps: torch.tensor([cats[p] for p in ps])  # noqa: E731
    torch.testing.assert_close(
        class_prototypes(embed_all, ["dog", "cat"], ["a {}", "the {}"]),
        prompt_prototypes(embed_all, [["a dog", "the dog"], ["a cat", "the cat"]]))
    logits = zero_shot_predict(torch.tensor([[3.0, 0.0], [0.0, 0.5]]), protos)
    assert logits.argmax(1).tolist() == [0, 1] and logits.max() <= 1 + 1e-6
    with pytest.raises(InvalidInputError, match="at least one prompt"):
        prompt_prototypes(embed, [["a dog"], []])
    with pytest.raises(InvalidInputError, match="no classes"):
        prompt_prototypes(embed, [])
