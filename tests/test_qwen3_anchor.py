"""The ``qwen3`` anchor against a hand-written reference on a tiny random Qwen3 model (offline)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from textme_sdk.builtin.qwen3 import DEFAULT_TASK, Qwen3Anchor, format_query
from textme_sdk.errors import TextMEError

CORPUS = [
    "a red dog runs across the green field",
    "the quick brown fox jumps over the lazy dog",
    "Instruct: Given a web search query, retrieve relevant passages that answer the query",
    "Query: what is the capital of France? Paris is the capital of France.",
    "cats sleep on warm windows while birds sing in the morning",
    "music, audio and images share one embedding space",
    "retrieve relevant passages for each question and answer",
]
TEXTS = [
    "a red dog",
    "the quick brown fox jumps over the lazy dog in the morning",
    "cats sleep",
    "what is the capital of France?",
]


def _tokenizer(vocab_size: int = 200, end_token: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<|endoftext|>", "<unk>"]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials))
    if end_token:  # like Qwen3-Embedding: every text ends with <|endoftext|>
        eos = tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(
            single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", eos)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|endoftext|>",
        unk_token="<unk>",
    )


def _tiny_config(vocab_size: int):
    from transformers import Qwen3Config

    return Qwen3Config(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, intermediate_size=64, max_position_embeddings=256,
        pad_token_id=0, eos_token_id=0, bos_token_id=0,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import Qwen3Model

    folder = tmp_path_factory.mktemp("qwen3-tiny")
    tok = _tokenizer()
    torch.manual_seed(0)
    model = Qwen3Model(_tiny_config(len(tok) + 8)).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, tok, model


def _reference(tok, model, texts: list[str]) -> torch.Tensor:
    rows = []
    with torch.no_grad():
        for t in texts:
            ids = tok(t, return_tensors="pt")
            h = model(**ids).last_hidden_state[0, -1]
            rows.append(h / h.norm())
    return torch.stack(rows)


def test_embeddings_match_reference_with_left_padding(tiny):
    folder, tok, model = tiny
    lengths = {len(tok(t)["input_ids"]) for t in TEXTS}
    assert len(lengths) > 1  # padding is exercised
    anchor = Qwen3Anchor(model_id=str(folder), device="cpu")
    assert anchor.embedding_dim == 0  # unknown before load (not a published size)
    got = anchor.encode(TEXTS, batch_size=4)
    assert anchor.embedding_dim == 32
    assert anchor._tokenizer.padding_side == "left"
    assert got.shape == (4, 32)
    torch.testing.assert_close(got, _reference(tok, model, TEXTS), atol=1e-5, rtol=0)
    # batch size 1 (no padding) agrees too
    torch.testing.assert_close(anchor.encode(TEXTS, batch_size=1), got, atol=1e-5, rtol=0)


def test_query_role_uses_instruction_prefix(tiny):
    folder, tok, model = tiny
    assert format_query("T", "x") == "Instruct: T\nQuery:x"
    anchor = Qwen3Anchor(model_id=str(folder), device="cpu")
    q = anchor.encode(TEXTS, role="query")
    ref = _reference(tok, model, [f"Instruct: {DEFAULT_TASK}\nQuery:{t}" for t in TEXTS])
    torch.testing.assert_close(q, ref, atol=1e-5, rtol=0)
    d = anchor.encode(TEXTS, role="document")
    torch.testing.assert_close(d, _reference(tok, model, TEXTS), atol=1e-5, rtol=0)
    custom = Qwen3Anchor(model_id=str(folder), device="cpu", task="Find the animal")
    ref2 = _reference(tok, model, [f"Instruct: Find the animal\nQuery:{t}" for t in TEXTS])
    torch.testing.assert_close(custom.encode(TEXTS, role="query"), ref2, atol=1e-5, rtol=0)


def test_matryoshka_dim(tiny):
    folder = tiny[0]
    full = Qwen3Anchor(model_id=str(folder), device="cpu").encode(TEXTS)
    cut = Qwen3Anchor(model_id=str(folder), device="cpu", dim=8)
    assert cut.embedding_dim == 8
    out = cut.encode(TEXTS)
    assert out.shape == (4, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4), atol=1e-5, rtol=0)
    expect = torch.nn.functional.normalize(full[:, :8], dim=1)
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=0)
    with pytest.raises(TextMEError, match="exceeds"):
        Qwen3Anchor(model_id=str(folder), device="cpu", dim=64).load()
    with pytest.raises(TextMEError, match="exceeds"):
        Qwen3Anchor(model_id="Qwen/Qwen3-Embedding-0.6B", dim=2048)


def test_config_round_trip(tiny, monkeypatch, tmp_path):
    import json

    folder = tiny[0]
    anchor = Qwen3Anchor(model_id=str(folder), device="cpu", dim=16, task="Find it", max_length=64)
    cfg = anchor.config()
    assert set(cfg) == {"model_id", "revision", "task", "dim", "max_length"}
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg["model_id"] == str(folder.resolve())
    again = Qwen3Anchor(**cfg)
    for role in ("document", "query"):
        assert torch.equal(anchor.encode(TEXTS, role=role), again.encode(TEXTS, role=role))
    # a relative local folder is stored as an absolute path
    monkeypatch.chdir(folder.parent)
    assert Qwen3Anchor(model_id=folder.name).config()["model_id"] == str(folder.resolve())


def test_known_dims_and_defaults():
    a = Qwen3Anchor()
    assert a.model_id == "Qwen/Qwen3-Embedding-4B" and a.embedding_dim == 2560
    assert a.max_length == 8192 and a.task == DEFAULT_TASK
    assert Qwen3Anchor("Qwen/Qwen3-Embedding-0.6B").embedding_dim == 1024
    assert Qwen3Anchor("Qwen/Qwen3-Embedding-8B", dim=256).embedding_dim == 256
    assert not a.is_loaded  # constructing loads nothing


def test_tiny_stub_tokenizer_is_refused(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast, Qwen3Model

    vocab = {"<|endoftext|>": 0, "<unk>": 1, "a": 2, "b": 3, "c": 4}
    stub = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
        pad_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<unk>",
    )
    assert len(stub) == 5
    Qwen3Model(_tiny_config(300)).save_pretrained(tmp_path)
    stub.save_pretrained(tmp_path)
    with pytest.raises(TextMEError, match="only 5 tokens"):
        Qwen3Anchor(model_id=str(tmp_path), device="cpu").load()


def test_full_size_key_layout_of_qwen3_embedding_0_6b():
    """Qwen3-Embedding-0.6B's published architecture, built on the meta device."""
    from transformers import Qwen3Config, Qwen3Model

    cfg = Qwen3Config(
        vocab_size=151669, hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, intermediate_size=3072,
        max_position_embeddings=32768, tie_word_embeddings=True, rms_norm_eps=1e-6,
    )
    with torch.device("meta"):
        model = Qwen3Model(cfg)
    sd = model.state_dict()
    # per layer: q/k/v/o proj, q_norm, k_norm, gate/up/down proj, two RMSNorms = 11
    assert len(sd) == 28 * 11 + 2
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["embed_tokens.weight"] == (151669, 1024)
    assert shapes["layers.0.self_attn.q_proj.weight"] == (16 * 128, 1024)
    assert shapes["layers.0.self_attn.k_proj.weight"] == (8 * 128, 1024)
    assert shapes["layers.0.self_attn.v_proj.weight"] == (8 * 128, 1024)
    assert shapes["layers.0.self_attn.o_proj.weight"] == (1024, 16 * 128)
    assert shapes["layers.0.self_attn.q_norm.weight"] == (128,)
    assert shapes["layers.27.mlp.down_proj.weight"] == (1024, 3072)
    assert shapes["norm.weight"] == (1024,)
    assert not any(k.endswith(".bias") for k in sd)
    assert Qwen3Anchor("Qwen/Qwen3-Embedding-0.6B").embedding_dim == cfg.hidden_size


def test_registered_through_hook():
    from textme_sdk.builtin import qwen3

    seen = {}
    qwen3.register_anchors(lambda name, factory, **meta: seen.update({name: (factory, meta)}))
    factory, meta = seen["qwen3"]
    assert factory is Qwen3Anchor and meta["license"] == "Apache-2.0"


def test_textme_with_qwen3_anchor_round_trips(tiny, gapdemo, tmp_path):
    """A bundle trained against the qwen3 anchor records it and reloads it through the plugin."""
    import json

    import numpy as np

    import textme_sdk as tm

    folder, _, _ = tiny
    anchor = tm.get_anchor("qwen3", model_id=str(folder), task="Find the matching sound", dim=16)
    enc = tm.get_encoder("gapdemo", dim=16)
    texts = [f"a {c} in the {p}" for c in ("dog", "cat", "car", "bell") for p in ("park", "room")] * 4
    offsets = tm.compute_offsets(enc, texts, [f"dog#{i}" for i in range(20)])
    proj = tm.train_projector(enc, anchor, texts, offsets, tm.TrainConfig(epochs=2, batch_size=8),
                              cache=tmp_path / "cache")
    model = tm.TextME(anchor, device="cpu").add_modality(enc, proj, offsets)
    path = model.save_pretrained(tmp_path / "bundle")
    cfg = json.loads((path / "config.json").read_text())["anchor"]
    assert cfg["plugin"] == "qwen3" and cfg["embedding_dim"] == 16
    assert cfg["config"]["model_id"] == str(folder) and "revision" in cfg["config"]
    assert cfg["config"]["task"] == "Find the matching sound" and cfg["config"]["dim"] == 16
    loaded = tm.TextME.from_pretrained(path, device="cpu")
    assert loaded.anchor.name == "qwen3" and loaded.anchor.embedding_dim == 16
    q = ["a dog barking"]
    np.testing.assert_allclose(loaded.embed(q, role="query"), model.embed(q, role="query"), atol=1e-6)
    np.testing.assert_allclose(loaded.embed(["dog#1"], modality="gapdemo"),
                               model.embed(["dog#1"], modality="gapdemo"), atol=1e-6)
