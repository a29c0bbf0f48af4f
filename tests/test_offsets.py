import pytest
import torch

import textme_sdk as tm
from textme_sdk.engine import Offsets, StreamingMean


def test_streaming_mean_is_exact_across_batches():
    x = torch.randn(1000, 16, dtype=torch.float64) * 3 + 1
    acc = StreamingMean(16)
    for chunk in x.split(37):
        acc.update(chunk)
    assert acc.count == 1000
    assert torch.allclose(acc.mean, x.mean(0), atol=1e-12)
    assert torch.allclose(acc.variance, x.var(0), atol=1e-10)
    assert acc.standard_error() == pytest.approx(float((x.var(0).sum() / 1000).sqrt()))


def test_offsets_refuse_missing_modal_samples():
    with pytest.raises(tm.EmptyInputError, match="modal"):
        Offsets.from_embeddings(torch.randn(5, 4), StreamingMean(4))


def test_offsets_roundtrip_and_centre():
    o = Offsets.from_embeddings(torch.randn(10, 4), torch.randn(12, 4))
    o2 = Offsets.from_state_dict(o.state_dict())
    assert torch.equal(o.mu_text, o2.mu_text) and o2.n_modal == 12
    x = torch.randn(3, 4)
    assert torch.allclose(o.centre_modal(x), x - o.mu_modal)
    with pytest.raises(tm.DimensionMismatchError, match="different encoder"):
        o.centre_text(torch.randn(3, 5))


def test_offsets_reject_nan():
    acc = StreamingMean(2)
    with pytest.raises(tm.InvalidEmbeddingError):
        acc.update(torch.tensor([[float("nan"), 0.0]]))


def test_compute_offsets_streams_and_refuses_empty(gapdemo):
    enc = tm.get_encoder("gapdemo", dim=16)
    texts = [f"a {w} here" for w in ["dog", "cat", "car"] * 50]
    items = [f"dog#{i}" for i in range(120)]
    o = tm.compute_offsets(enc, iter(texts), iter(items), batch_size=8)
    assert o.n_text == 150 and o.n_modal == 120
    direct = enc.encode_modal(items).double().mean(0).float()
    assert torch.allclose(o.mu_modal, direct, atol=1e-6)
    with pytest.raises(tm.EmptyInputError, match="unpaired"):
        tm.compute_offsets(enc, texts, [])
