"""Training in bounded memory: cache entries are memory-mapped, merged from their chunk files one
at a time, and ``fit_projector`` centres each batch itself (``input_offset``), so the cached
float16 rows are never copied whole. (The memory numbers are in benchmarks/bench_memory.py.)"""

from __future__ import annotations

import sys

import pytest
import torch
from safetensors.torch import load_file

from textme_sdk.engine import EmbeddingCache, TrainConfig, fit_projector
from textme_sdk.engine.cache import content_key
from textme_sdk.errors import DimensionMismatchError

MODEL = {"kind": "toy"}
TEXTS = [f"text {i}" for i in range(50)]


def _compute(chunk):
    g = torch.Generator().manual_seed(len(chunk))
    return torch.nn.functional.normalize(torch.randn(len(chunk), 6, generator=g), dim=1)


def _mapped_files(tensor: torch.Tensor) -> set[str]:
    """The files whose memory mapping holds ``tensor``'s first byte (Linux /proc/self/maps)."""
    ptr, found = tensor.data_ptr(), set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            if lo <= ptr < hi and len(parts) >= 6:
                found.add(parts[5])
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_hits_and_fresh_entries_are_memory_mapped(tmp_path):
    cache = EmbeddingCache(tmp_path)
    first = cache.get_or_compute(MODEL, TEXTS, _compute, chunk_size=16)
    path = cache.path(content_key(MODEL, TEXTS))
    hit = cache.get_or_compute(MODEL, TEXTS, _compute, chunk_size=16)
    for t in (first, hit):
        assert str(path) in _mapped_files(t)
        assert t.dtype == torch.float16 and t.shape == (50, 6)
    assert torch.equal(first, hit)


def test_the_streamed_entry_is_a_standard_safetensors_file(tmp_path):
    cache = EmbeddingCache(tmp_path)
    out = cache.get_or_compute(MODEL, TEXTS, _compute, chunk_size=16)
    expected = torch.cat([_compute(TEXTS[i:i + 16]) for i in range(0, 50, 16)]).half()
    saved = load_file(str(cache.path(content_key(MODEL, TEXTS))))["embeddings"]
    assert torch.equal(saved, expected) and torch.equal(out, expected)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_other_storage_dtypes_round_trip(tmp_path, dtype):
    cache = EmbeddingCache(tmp_path, dtype=dtype)
    out = cache.get_or_compute(MODEL, TEXTS, _compute, chunk_size=16)
    again = EmbeddingCache(tmp_path, dtype=dtype).load(content_key(MODEL, TEXTS), 50)
    assert out.dtype == again.dtype == dtype and torch.equal(out, again)


def _data(n=300):
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(n, 12, generator=g), dim=1)
    y = torch.nn.functional.normalize(x @ torch.randn(12, 8, generator=g), dim=1)
    return x.half(), y.half()


def test_input_offset_is_the_same_computation_as_centred_inputs(tmp_path):
    x, y = _data()
    mu = x.float().mean(0) + 0.01
    cfg = TrainConfig(epochs=2, batch_size=32, seed=3)
    a = fit_projector(x, y, cfg, input_offset=mu, show_progress_bar=False)
    b = fit_projector(x.float() - mu, y, cfg, show_progress_bar=False)
    for (ka, va), (kb, vb) in zip(a.projector.state_dict().items(), b.projector.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert a.history == b.history


def test_input_offset_is_part_of_the_resume_fingerprint(tmp_path):
    x, y = _data()
    cfg = TrainConfig(epochs=1, batch_size=32)
    fit_projector(x, y, cfg, checkpoint_dir=tmp_path, input_offset=torch.zeros(12),
                  show_progress_bar=False)
    from textme_sdk.errors import TrainingCheckpointError

    with pytest.raises(TrainingCheckpointError, match="other data"):
        fit_projector(x, y, cfg, checkpoint_dir=tmp_path, resume=True,
                      input_offset=torch.full((12,), 0.1), show_progress_bar=False)


@pytest.mark.parametrize("offset", [torch.zeros(11), torch.zeros(2, 12),
                                    torch.full((12,), float("nan"))])
def test_a_bad_input_offset_is_refused_before_training(offset):
    x, y = _data(40)
    with pytest.raises(DimensionMismatchError, match="input_offset must be a finite \\[12\\]"):
        fit_projector(x, y, TrainConfig(epochs=1, batch_size=8), input_offset=offset,
                      show_progress_bar=False)
