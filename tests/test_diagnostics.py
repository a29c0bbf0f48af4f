import pytest
import torch

from textme_sdk.diagnostics import gap_geometry, unpaired_geometry


def _pairs(n=600, d=32, gap=0.8, jitter=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    content = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1)
    shift = torch.nn.functional.normalize(torch.randn(d, generator=g), dim=0) * gap
    noise = jitter * torch.randn(n, d, generator=g)
    return content, content + shift + noise


def test_constant_gap_is_consistent_and_gets_no_warning():
    t, x = _pairs()
    r = gap_geometry(t, x)
    assert r.gap_consistency > 0.9 and r.bounded_deviation < 0.6
    assert r.independence_split_half > 0.95 and r.warnings == []
    assert r.paired_cosine < r.intra_text_cosine + 1  # fields are finite numbers
    assert r.n_pairs == 600


def test_random_gaps_are_flagged():
    t, x = _pairs(gap=0.05, jitter=0.5)
    r = gap_geometry(t, x)
    assert r.gap_consistency < 0.5
    assert any("single offset" in w for w in r.warnings)
    assert any("tiny" in w for w in r.warnings)


def test_cross_cosine_and_gap_direction_accuracy_by_hand():
    # text e0, e1 and their modal partners pushed along e2: x_i = (t_i + 2 e2) / sqrt(5)
    t = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    x = (t + torch.tensor([0, 0, 2.0])) / 5 ** 0.5
    r = gap_geometry(t, x)
    # of the 12 non-matching pairs (i != j), cos(t_i, x_j) is 1/sqrt(5) where t_i = t_j (pairs
    # (0,2), (2,0), (1,3), (3,1)) and 0 otherwise -> 4/12 / sqrt(5)
    assert r.cross_cosine == pytest.approx(4 / 12 / 5 ** 0.5)
    assert r.gap_direction_accuracy == 1.0  # e2 splits the modalities cleanly
    u = unpaired_geometry(t, x)
    assert u.cross_cosine == pytest.approx(8 / 16 / 5 ** 0.5)  # all 16 pairs
    assert u.gap_direction_accuracy == 1.0
    # the same centroid for both: no direction separates them, only the modal half is "right"
    same = gap_geometry(t, t[[1, 0, 3, 2]])
    assert same.gap_direction_accuracy == 0.5
