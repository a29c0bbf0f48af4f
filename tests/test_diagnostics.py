import torch

from textme_sdk.diagnostics import gap_geometry


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
