import torch

import textme_sdk as tm
from textme_sdk.engine import EmbeddingCache, content_key
from textme_sdk.training import anchor_embeddings, encoder_text_embeddings


class Counting:
    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, texts):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("boom")
        return torch.stack([torch.full((4,), float(len(t))) for t in texts])


def test_computes_once_then_hits(tmp_path):
    cache, fn = EmbeddingCache(tmp_path), Counting()
    texts = [f"text {i}" for i in range(25)]
    a = cache.get_or_compute({"m": 1}, texts, fn, chunk_size=10)
    b = cache.get_or_compute({"m": 1}, texts, fn, chunk_size=10)
    assert fn.calls == 3 and torch.equal(a, b) and a.dtype == torch.float16
    cache.get_or_compute({"m": 2}, texts, fn, chunk_size=10)
    assert fn.calls == 6


def test_interrupted_extraction_resumes(tmp_path):
    cache = EmbeddingCache(tmp_path)
    texts = [f"t{i}" for i in range(30)]
    failing = Counting(fail_at=3)
    try:
        cache.get_or_compute({"m": 1}, texts, failing, chunk_size=10)
    except RuntimeError:
        pass
    again = Counting()
    out = cache.get_or_compute({"m": 1}, texts, again, chunk_size=10)
    assert again.calls == 1 and out.shape == (30, 4)  # only the missing chunk


def test_key_depends_on_texts_and_order():
    assert content_key({"a": 1}, ["x", "y"]) != content_key({"a": 1}, ["y", "x"])
    assert content_key({"a": 1}, ["xy"]) != content_key({"a": 1}, ["x", "y"])
    assert content_key({"a": 1}, ["x"]) == content_key({"a": 1}, ["x"])


def test_second_training_run_never_loads_models(gapdemo, minilm, tmp_path):
    enc = tm.get_encoder("gapdemo", dim=16)
    texts = ["a dog", "a red cat", "a car in the street"] * 4
    encoder_text_embeddings(enc, texts, tmp_path)
    anchor_embeddings(minilm, texts, cache=tmp_path)
    fresh_enc = tm.get_encoder("gapdemo", dim=16)
    fresh_anchor = tm.get_anchor("minilm")
    encoder_text_embeddings(fresh_enc, texts, tmp_path)
    anchor_embeddings(fresh_anchor, texts, cache=tmp_path)
    assert not fresh_enc.is_loaded and not fresh_anchor.is_loaded


def test_second_train_projector_loads_neither_model(gapdemo, minilm, tmp_path):
    texts = ["a dog", "a red cat", "a car in the street", "a boat"] * 8
    cfg = tm.TrainConfig(epochs=1, batch_size=8)
    enc = tm.get_encoder("gapdemo", dim=16)
    tm.train_projector(enc, minilm, texts, tm.Offsets.zeros(16), cfg, cache=tmp_path)
    fresh_enc, fresh_anchor = tm.get_encoder("gapdemo", dim=16), tm.get_anchor("minilm")
    tm.train_projector(fresh_enc, fresh_anchor, texts, tm.Offsets.zeros(16), cfg, cache=tmp_path)
    assert not fresh_enc.is_loaded and not fresh_anchor.is_loaded
