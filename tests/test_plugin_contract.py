"""The plugin contract of the base classes: both writing styles, robust lazy state, typed
errors from inside plugins, the expected-dimension check, and ``config()`` captured from the
constructor. The end-to-end test uses ``tests/fixtures/textme-glyph``, an external plugin
written the natural way (public methods overridden, no ``super().__init__()``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import textme_sdk as tm
from gapworld import CLASSES, descriptions, labelled_eval, modal_samples


# -- the natural style, end to end through an entry point ----------------------------------
def test_natural_style_plugin_installs_trains_saves_reloads_and_classifies(glyph, minilm,
                                                                            tmp_path):
    reg = next(r for r in tm.list_encoders() if r.name == "glyph")
    assert reg.plugin == "glyph" and reg.modality == "glyph"
    enc = tm.get_encoder("glyph")
    assert enc.plugin == "glyph" and not enc.is_loaded  # lazy although __init__ skipped super()

    text = enc.encode_text(["a photo of a dog", "a cat"])
    assert text.shape == (2, 64)
    torch.testing.assert_close(text.norm(dim=1), torch.ones(2))  # the base class normalises
    assert enc.is_loaded and enc.loads == 1
    enc.encode_modal(["dog#1", "cat#2"])
    assert enc.loads == 1  # loaded once, not per call

    offsets = tm.compute_offsets(enc, descriptions(1000, seed=7), modal_samples(1000))
    assert offsets.gap > 0.5
    cfg = tm.TrainConfig(epochs=30, batch_size=256, seed=0)
    projector = tm.train_projector(enc, minilm, descriptions(2400), offsets, cfg,
                                   cache=tmp_path / "cache")
    model = tm.TextME(minilm).add_modality(enc, projector, offsets)

    items, labels = labelled_eval(4)
    prompts = [f"a photo of a {c}" for c in CLASSES]

    def top1(m: tm.TextME) -> float:
        sim = m.similarity(m.embed(items, modality="glyph"), m.embed(prompts, modality="text"))
        return float((sim.argmax(1) == np.asarray(labels)).mean())

    accuracy = top1(model)
    assert accuracy > 10 / len(CLASSES), accuracy  # ten times chance

    bundle = model.save_pretrained(tmp_path / "bundle")
    stored = json.loads((bundle / "config.json").read_text())["modalities"]["glyph"]
    assert stored["plugin"] == "glyph" and stored["encoder"] == {"width": 64, "shift": 1.2}
    loaded = tm.TextME.from_pretrained(bundle, anchor=minilm)
    assert loaded.entry("glyph").encoder is not enc
    np.testing.assert_allclose(loaded.embed(items[:6], modality="glyph"),
                               model.embed(items[:6], modality="glyph"), atol=1e-6)
    assert top1(loaded) == pytest.approx(accuracy)


def test_errors_inside_a_plugin_arrive_typed_and_name_plugin_modality_and_positions(glyph):
    enc = tm.get_encoder("glyph")
    with pytest.raises(tm.EncoderError) as info:
        enc.encode_modal(["dog#1", "cat#1", "unicorn#1", "dog#2"], batch_size=2)
    msg = str(info.value)
    assert "encoder 'glyph'" in msg and "plugin 'glyph'" in msg and "modality 'glyph'" in msg
    assert "positions 2, 3" in msg and "unknown glyph concept 'unicorn'" in msg
    assert isinstance(info.value.__cause__, ValueError)  # chained to the plugin's own error

    with pytest.raises(tm.EncoderLoadError, match=r"encoder 'glyph-broken-load' \(plugin 'glyph'"
                                                  r".*OSError: weights.bin: permission denied"):
        tm.get_encoder("glyph-broken-load").encode_text(["a dog"])
    with pytest.raises(tm.PluginLoadError, match=r"factory of encoder 'glyph-broken-factory' "
                                                 r"\(plugin 'glyph'\).*font cache is corrupt"):
        tm.get_encoder("glyph-broken-factory")
    with pytest.raises(tm.InvalidInputError, match="could not be built with the arguments"):
        tm.get_encoder("glyph", colour="red")


def test_errors_reach_the_model_api_typed(glyph, minilm):
    enc = tm.get_encoder("glyph")
    enc.load()
    model = tm.TextME(minilm).add_modality(
        enc, tm.Projector(64, 384), tm.Offsets.zeros(64))
    with pytest.raises(tm.EncoderError, match=r"positions 0 .*unicorn"):
        model.embed(["unicorn#1"], modality="glyph")


# -- the two styles, in process ------------------------------------------------------------
class BatchStyle(tm.ModalityEncoder):
    name, modality, embedding_dim = "batch-style", "toy", 4

    def load_model(self, device, dtype):
        self.w = torch.eye(4)

    def encode_text_batch(self, texts):
        return torch.stack([self.w[len(t) % 4] + 0.1 for t in texts])

    def encode_modal_batch(self, batch):
        return torch.stack([self.w[int(x) % 4] + 0.1 for x in batch])


class PublicStyle(tm.ModalityEncoder):
    name, modality, embedding_dim = "public-style", "toy", 4

    def __init__(self, scale: float = 1.0):  # no super().__init__()
        self.scale = scale

    def load(self):
        self.w = torch.eye(4) * self.scale

    def encode_text(self, texts):
        return torch.stack([self.w[len(t) % 4] + 0.1 for t in texts])

    def encode_modal(self, inputs):
        return torch.stack([self.w[int(x) % 4] + 0.1 for x in inputs])


def test_both_styles_give_the_same_validated_normalised_outputs():
    a, b = BatchStyle(), PublicStyle()
    for enc in (a, b):
        assert not enc.is_loaded
    torch.testing.assert_close(a.encode_text(["ab", "abc", "a"], batch_size=2),
                               b.encode_text(["ab", "abc", "a"], batch_size=2))
    torch.testing.assert_close(a.encode_modal([1, 2, 3]), b.encode_modal([1, 2, 3]))
    torch.testing.assert_close(b.encode_modal([1, 2]).norm(dim=1), torch.ones(2))
    assert b.is_loaded and b.device.type in ("cpu", "cuda")
    # the same input validation applies to overridden public methods
    with pytest.raises(tm.EmptyInputError):
        b.encode_text([])
    with pytest.raises(tm.InvalidInputError, match="single str"):
        b.encode_text("a dog")


def test_overridden_public_outputs_are_checked():
    class Wrong(PublicStyle):
        def encode_text(self, texts):
            return torch.full((len(texts), 4), float("nan"))

        def encode_modal(self, inputs):
            return torch.ones(len(inputs) + 1, 4)

    enc = Wrong()
    with pytest.raises(tm.InvalidEmbeddingError, match="NaN"):
        enc.encode_text(["a"])
    with pytest.raises(tm.InvalidEmbeddingError, match="expected \\(2, 4\\)"):
        enc.encode_modal([1, 2])


def test_a_class_that_implements_neither_style_is_refused_by_name():
    class Half(tm.ModalityEncoder):
        def load_model(self, device, dtype):
            pass

        def encode_text_batch(self, texts):
            return torch.ones(len(texts), 2)

    with pytest.raises(tm.IncompletePluginError,
                       match="Half cannot be built.*encode_modal_batch \\(or override encode_modal\\)"):
        Half()

    class NoAnchor(tm.AnchorModel):
        pass

    with pytest.raises(tm.IncompletePluginError, match="load_model \\(or override load\\).*"
                                                       "encode_batch \\(or override encode\\)"):
        NoAnchor()


def test_anchor_in_the_public_style_with_or_without_role():
    class Anchor(tm.AnchorModel):
        name, embedding_dim = "tiny-anchor", 3

        def load(self):
            self.ready = True

        def encode(self, texts, role):
            base = torch.ones(len(texts), 3)
            return base * (2 if role == "query" else 1) + torch.arange(3)

    out = Anchor().encode(["a", "b"], role="query")
    assert out.shape == (2, 3)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_super_init_forgotten_keeps_lazy_state_and_device_preference():
    enc = PublicStyle(scale=2.0)
    enc.prefer_device("cpu")
    assert not enc.is_loaded and enc.device.type == "cpu"
    enc.load("cpu")
    assert enc.is_loaded and enc.device == torch.device("cpu")
    enc.load("cpu")  # again on the same device: a no-op


# -- config captured from the constructor, and the expected dimension --------------------
class Configurable(BatchStyle):
    def __init__(self, model_id: str = "toy/base", revision: str | None = None,
                 folder=None, embedding_dim: int | None = None, device=None, dtype=None,
                 **options):
        super().__init__(device, dtype)
        self.embedding_dim = embedding_dim or 4

    def load_model(self, device, dtype):
        super().load_model(device, dtype)
        self.embedding_dim = 4  # what the weights really produce


def test_config_defaults_to_the_constructor_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    enc = Configurable("toy/large", folder=tmp_path / "w", device="cpu", dtype=torch.float32,
                       lang="en")
    assert enc.config() == {"model_id": "toy/large", "folder": str(tmp_path / "w"),
                            "lang": "en", "embedding_dim": 4}
    rebuilt = Configurable(**enc.config())
    assert rebuilt.config() == enc.config()

    class NotStorable(Configurable):
        pass

    with_object = NotStorable(tokenizer=object())
    assert "tokenizer" not in with_object.config()  # cannot be stored; logged, left out


def test_the_loaded_dimension_must_match_the_requested_one():
    assert Configurable(embedding_dim=4).load("cpu").embedding_dim == 4
    with pytest.raises(tm.EncoderLoadError, match="produces 4-d embeddings, but embedding_dim=8"):
        Configurable(embedding_dim=8).load("cpu")


def test_default_dtype_and_absolute_path(tmp_path, monkeypatch):
    from textme_sdk.encoders import absolute_path, default_dtype

    assert default_dtype("cpu") == torch.float32 and default_dtype("cuda") == torch.float16
    assert default_dtype("cuda", torch.bfloat16) == torch.bfloat16
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    assert absolute_path("ckpt.pt") == str(tmp_path / "ckpt.pt")
    assert absolute_path("org/model-on-the-hub") == "org/model-on-the-hub"
    assert absolute_path(None) is None


# -- registries: losses by name, commands, all through pluggy ------------------------------
def test_a_plugin_loss_is_chosen_by_name(glyph, minilm, tmp_path):
    import textme_glyph

    names = [r.name for r in tm.list_losses()]
    assert {"hard_negative_infonce", "infonce", "glyph-cosine"} <= set(names)
    row = next(r for r in tm.plugin_status() if r["plugin"] == "glyph")
    assert row["losses"] == ["glyph-cosine"] and "glyph" in row["encoders"]
    enc = tm.get_encoder("glyph")
    texts = descriptions(64)
    before = textme_glyph.CALLS["glyph-cosine"]
    cfg = tm.TrainConfig(epochs=2, batch_size=16, loss="glyph-cosine")
    result = tm.train_projector(enc, minilm, texts, tm.Offsets.zeros(64), cfg, cache=False)
    assert textme_glyph.CALLS["glyph-cosine"] > before  # training steps and validation
    assert 0.0 <= result.training_result.history[-1]["train_loss"] <= 2.0  # a cosine loss


def test_an_unknown_loss_fails_before_any_embedding_work(minilm):
    enc = BatchStyle()
    with pytest.raises(tm.UnknownPluginError, match="no loss named 'nope'.*hard_negative_infonce"):
        tm.train_projector(enc, minilm, ["a", "b"], tm.Offsets.zeros(4),
                           tm.TrainConfig(loss="nope"), cache=False)
    assert not enc.is_loaded


def test_plugin_commands_join_the_cli(glyph_site):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(glyph_site)}
    out = subprocess.run([sys.executable, "-m", "textme_sdk.cli", "glyph-hello", "--name", "you"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "hello you from glyph" in out.stdout


# -- the shared end-to-end check -----------------------------------------------------------
def test_check_encoder_runs_a_plugin_end_to_end(glyph, minilm, tmp_path):
    from textme_sdk.testing import check_encoder

    enc = tm.get_encoder("glyph")
    result = check_encoder(enc, descriptions(48), modal_samples(24), tmp_path, anchor=minilm,
                           bad_inputs=[("unicorn#1", tm.EncoderError)])
    assert result.embeddings.shape == (8, 384) and result.bundle.is_dir()
    assert result.loaded.modalities == ["glyph"]


def test_check_encoder_fails_loudly_when_a_guarantee_breaks(glyph, minilm, tmp_path):
    from textme_sdk.testing import check_encoder

    enc = tm.get_encoder("glyph")
    with pytest.raises(AssertionError, match=r"\['dog#1'\] was accepted; expected InvalidInputError"):
        check_encoder(enc, descriptions(48), modal_samples(24), tmp_path, anchor=minilm,
                      bad_inputs=[("dog#1", tm.InvalidInputError)])


# -- skipping unreadable inputs ------------------------------------------------------------
def test_encode_modal_skipping_keeps_the_readable_inputs_in_order(glyph):
    enc = tm.get_encoder("glyph")
    items = ["dog#1", "unicorn#1", "cat#1", "dog#2", "unicorn#2", "cat#3", "bird#1"]
    result = enc.encode_modal_skipping(items, batch_size=3)
    assert result.kept == [0, 2, 3, 5, 6]
    assert [i for i, _ in result.skipped] == [1, 4]
    assert all("unknown glyph concept 'unicorn'" in why for _, why in result.skipped)
    torch.testing.assert_close(result.embeddings,
                               enc.encode_modal([items[i] for i in result.kept]), atol=1e-6, rtol=0)
    with pytest.raises(tm.EncoderLoadError):  # loading problems are never skipped
        tm.get_encoder("glyph-broken-load").encode_modal_skipping(["dog#1"])


def test_check_registration_reports_a_plugin_and_refuses_heavy_imports(glyph_site, monkeypatch):
    from textme_sdk.testing import check_registration

    monkeypatch.setenv("PYTHONPATH", str(glyph_site))
    info = check_registration("glyph", heavy=("sklearn",))
    assert info["modality"] == "glyph" and info["class"] == "GlyphEncoder"
    assert info["config"] == {"width": 64, "shift": 1.2} and info["embedding_dim"] == 64
    with pytest.raises(AssertionError, match=r"imported heavy modules \['zlib'\]"):
        check_registration("glyph", heavy=("zlib",))  # the glyph module imports zlib at once
