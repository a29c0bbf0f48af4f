"""The embedding cache checks every hit: a damaged entry, or one with the wrong number of rows
or non-finite values, is named, removed and recomputed - never returned."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import textme_sdk as tm
from textme_sdk.engine.cache import EmbeddingCache, content_key

MODEL = {"kind": "toy"}
TEXTS = [f"text {i}" for i in range(30)]


def compute(calls):
    def fn(chunk):
        calls.append(len(chunk))
        return torch.nn.functional.normalize(torch.randn(len(chunk), 4), dim=1)
    return fn


@pytest.mark.parametrize("damage", ["garbage", "wrong_rows", "nan", "no_matrix", "truncated"])
def test_an_unusable_final_entry_is_recomputed(tmp_path, damage, caplog):
    cache = EmbeddingCache(tmp_path)
    calls: list[int] = []
    first = cache.get_or_compute(MODEL, TEXTS, compute(calls), chunk_size=10)
    path = cache.path(content_key(MODEL, TEXTS))
    if damage == "garbage":
        path.write_bytes(b"\x00not safetensors")
    elif damage == "wrong_rows":
        save_file({"embeddings": first[:10].contiguous()}, str(path))  # valid, 10 of 30 rows
    elif damage == "nan":
        save_file({"embeddings": torch.full((30, 4), float("nan"), dtype=torch.float16)}, str(path))
    elif damage == "no_matrix":
        save_file({"other": first.contiguous()}, str(path))
    else:
        path.write_bytes(path.read_bytes()[:100])
    calls.clear()
    with caplog.at_level("WARNING"):
        again = cache.get_or_compute(MODEL, TEXTS, compute(calls), chunk_size=10)
    assert again.shape == (30, 4) and torch.isfinite(again).all()
    assert sum(calls) == 30  # recomputed
    assert str(path) in caplog.text and "recomputed" in caplog.text


def test_a_damaged_chunk_of_an_interrupted_run_is_recomputed(tmp_path):
    cache = EmbeddingCache(tmp_path)
    calls: list[int] = []

    def crash_on_third(chunk):
        if len(calls) == 2:
            raise RuntimeError("crash")
        return compute(calls)(chunk)

    with pytest.raises(RuntimeError):
        cache.get_or_compute(MODEL, TEXTS, crash_on_third, chunk_size=10)
    key = content_key(MODEL, TEXTS)
    parts = sorted((tmp_path / f"{key}.partial-10").glob("*.safetensors"))
    assert len(parts) == 2
    parts[1].write_bytes(b"broken")
    calls.clear()
    out = cache.get_or_compute(MODEL, TEXTS, compute(calls), chunk_size=10)
    assert out.shape == (30, 4) and calls == [10, 10]  # chunk 1 again, and chunk 2


def test_load_names_the_unusable_file(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.get_or_compute(MODEL, TEXTS, compute([]), chunk_size=10)
    key = content_key(MODEL, TEXTS)
    cache.path(key).write_bytes(b"junk")
    with pytest.raises(tm.InvalidEmbeddingError, match="cache entry .* is unusable .*delete it"):
        cache.load(key)
