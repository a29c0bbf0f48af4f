import math

import pytest
import torch

from textme_sdk.evaluation import average_precision, auroc, class_prototypes, mrr, ppr, recall_at_k, topk_accuracy
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
