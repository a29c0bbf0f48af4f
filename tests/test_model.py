import numpy as np
import pytest
import torch

import textme_sdk as tm


@pytest.fixture
def model(gapdemo, minilm):
    enc = tm.get_encoder("gapdemo", dim=16)
    torch.manual_seed(0)
    return tm.TextME(minilm).add_modality(enc, tm.Projector(16, 384),
                                          tm.Offsets.from_embeddings(torch.randn(8, 16), torch.randn(8, 16)))


def test_embed_shapes_and_types(model):
    batch = model.embed(["dog#1", "cat#1"], modality="gapdemo")
    assert isinstance(batch, np.ndarray) and batch.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1, atol=1e-5)
    one = model.embed("dog#1", modality="gapdemo", convert_to_tensor=True)
    assert isinstance(one, torch.Tensor) and one.shape == (384,)
    np.testing.assert_allclose(one.numpy(), batch[0], atol=1e-6)
    assert model.embed("a dog", modality="text").shape == (384,)


def test_text_via_encoder_uses_text_offsets(model):
    enc_entry = model.entry("gapdemo")
    raw = enc_entry.encoder.encode_text(["a dog"])
    expected = enc_entry.projector(raw - enc_entry.offsets.mu_text)
    got = model.embed(["a dog"], modality="text", via="gapdemo", convert_to_tensor=True)
    assert torch.allclose(got, expected.detach(), atol=1e-6)


def test_similarity(model):
    a = model.embed(["a dog", "a cat"])
    sim = model.similarity(a, a)
    assert sim.shape == (2, 2) and np.allclose(np.diag(sim), 1, atol=1e-5)
    assert isinstance(model.similarity(torch.tensor(a), a), torch.Tensor)
    with pytest.raises(tm.DimensionMismatchError, match="same model"):
        model.similarity(a, np.ones((1, 5)))


def test_errors_name_the_problem(model, minilm):
    with pytest.raises(tm.UnknownModalityError, match="has: text, gapdemo"):
        model.embed(["x"], modality="audio")
    with pytest.raises(tm.EmptyInputError):
        model.embed([], modality="gapdemo")
    with pytest.raises(tm.InvalidInputError, match="strings"):
        model.embed([1, 2], modality="text")
    with pytest.raises(TypeError):
        model.embed(["x"], modality="text", normalize_embeddings=True)
    enc = tm.get_encoder("gapdemo", dim=16)
    with pytest.raises(tm.DimensionMismatchError, match="anchor is 384-d"):
        tm.TextME(minilm).add_modality(enc, tm.Projector(16, 100), tm.Offsets.zeros(16))
    with pytest.raises(tm.DimensionMismatchError, match="same encoder"):
        tm.TextME(minilm).add_modality(enc, tm.Projector(16, 384), tm.Offsets.zeros(8))


def test_encoder_output_validation(gapdemo):
    enc = tm.get_encoder("gapdemo", dim=16)
    enc.encode_text_batch = lambda texts: torch.full((len(texts), 16), float("nan"))
    with pytest.raises(tm.InvalidEmbeddingError, match="NaN"):
        enc.encode_text(["a", "b"])
    enc.encode_text_batch = lambda texts: torch.ones(len(texts), 15)
    with pytest.raises(tm.InvalidEmbeddingError, match="expected"):
        enc.encode_text(["a"])
    with pytest.raises(tm.InvalidInputError, match="wrap it in a list"):
        enc.encode_text("a dog")


def test_encoders_load_lazily_and_keep_order(gapdemo):
    enc = tm.get_encoder("gapdemo", dim=16)
    assert not enc.is_loaded
    texts = ["a much longer text about a dog", "cat", "a red car"]
    together = enc.encode_text(texts, batch_size=2)
    assert enc.is_loaded and enc.loads == 1
    one_by_one = torch.cat([enc.encode_text([t]) for t in texts])
    assert torch.allclose(together, one_by_one, atol=1e-6)


def test_model_device_reaches_unloaded_encoders_and_anchor(gapdemo):
    enc = tm.get_encoder("gapdemo", dim=16)
    anchor = tm.get_anchor("minilm")
    tm.TextME(anchor, device="cpu").add_modality(enc, tm.Projector(16, 384), tm.Offsets.zeros(16))
    assert enc.device.type == "cpu" and anchor.device.type == "cpu"
    explicit = tm.get_encoder("gapdemo", dim=16, device="meta")
    explicit.prefer_device("cpu")
    assert explicit.device.type == "meta"  # an explicit request wins


def test_missing_input_file_error_is_both_kinds():
    err = tm.MissingInputFileError("x.png does not exist")
    assert isinstance(err, tm.InvalidInputError) and isinstance(err, FileNotFoundError)


def test_check_input_file(tmp_path):
    from textme_sdk.encoders import check_input_file

    (tmp_path / "a.wav").write_bytes(b"x")
    check_input_file(str(tmp_path / "a.wav"), "audio", "*.wav")
    with pytest.raises(tm.InvalidInputError, match="is a folder, not an audio file"):
        check_input_file(str(tmp_path), "audio", "*.wav")
    with pytest.raises(tm.MissingInputFileError, match="image file not found"):
        check_input_file(str(tmp_path / "nope.png"), "image", "*.jpg")
