"""Offline tests of the ``clap`` encoder with both backends.

* transformers: tiny ``ClapModel`` configs (random weights) saved as local folders with a
  tokenizer trained here; the full-size ids' architectures built on the meta device from
  their configs written out by hand.
* laion_clap: the real HTSAT-tiny audio branch with a tiny RoBERTa, loaded from a checkpoint
  in the published ``{"state_dict": {"module.*"}}`` format; the full-size published layouts
  derived by hand from ``clap_module`` (HTSAT) and roberta-base's config.
* end to end: the tiny transformers model trained into a bundle with the real MiniLM anchor,
  saved, and rebuilt from the bundle's stored encoder config; bad inputs raise typed errors.
"""

from __future__ import annotations

import argparse
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json

import numpy as np
import pytest
import torch
from textme_clap import CheckpointError, CLAPEncoder, CLAPLoadError, TokenizerError, laion
from textme_clap.common import check_tokenizer

import textme_sdk as tm
from textme_sdk import get_encoder
from textme_sdk import errors as core_errors
from textme_sdk.errors import (
    EmptyInputError,
    EncoderLoadError,
    InvalidInputError,
    MissingInputFileError,
)
from textme_sdk.testing import check_encoder, check_registration

SR = 48_000
CORPUS = [
    "a dog barks", "rain falls on a metal roof", "a man speaks slowly", "music with drums",
    "birds sing in the morning", "a car engine starts", "people laugh and talk", "waves crash",
]


# -- helpers -------------------------------------------------------------------------------
def train_tokenizer(vocab_size: int = 320):
    """A byte-level BPE in RoBERTa's layout (<s>=0, <pad>=1, </s>=2, <unk>=3), trained offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
    )


def noise(seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    samples = np.random.default_rng(seed).standard_normal(int(seconds * rate))
    return (samples * 0.1).astype(np.float32)


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


# -- the published layouts, derived by hand ------------------------------------------------
def roberta_layout(prefix: str, vocab: int = 50265, positions: int = 514, layers: int = 12,
                   ffn: int = 3072, width: int = 768) -> dict[str, tuple[int, ...]]:
    """RobertaModel (with pooler): roberta-base is 50265 x 768, 514 positions, 12 layers."""
    out: dict[str, tuple[int, ...]] = {
        f"{prefix}embeddings.word_embeddings.weight": (vocab, width),
        f"{prefix}embeddings.position_embeddings.weight": (positions, width),
        f"{prefix}embeddings.token_type_embeddings.weight": (1, width),
        f"{prefix}pooler.dense.weight": (width, width),
        f"{prefix}pooler.dense.bias": (width,),
    }
    norms = ["embeddings.LayerNorm"]
    for i in range(layers):
        layer = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            out[f"{prefix}{layer}attention.self.{name}.weight"] = (width, width)
            out[f"{prefix}{layer}attention.self.{name}.bias"] = (width,)
        out[f"{prefix}{layer}attention.output.dense.weight"] = (width, width)
        out[f"{prefix}{layer}attention.output.dense.bias"] = (width,)
        out[f"{prefix}{layer}intermediate.dense.weight"] = (ffn, width)
        out[f"{prefix}{layer}intermediate.dense.bias"] = (ffn,)
        out[f"{prefix}{layer}output.dense.weight"] = (width, ffn)
        out[f"{prefix}{layer}output.dense.bias"] = (width,)
        norms += [f"{layer}attention.output.LayerNorm", f"{layer}output.LayerNorm"]
    for norm in norms:
        out[f"{prefix}{norm}.weight"] = out[f"{prefix}{norm}.bias"] = (width,)
    return out


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    out = {f"{prefix}.{n}": (channels,) for n in ("weight", "bias", "running_mean", "running_var")}
    out[f"{prefix}.num_batches_tracked"] = ()
    return out


def htsat_layout(embed: int, depths: tuple[int, ...], heads: tuple[int, ...],
                 fusion: bool) -> dict[str, tuple[int, ...]]:
    """``audio_branch.*`` of LAION-CLAP's HTSAT (clap_module/htsat.py).

    Spectrogram: torchlibrosa STFT as two 1024-tap convs (513 bins) + a 513 x 64 mel matrix;
    bn0 over 64 mels; 4 x 4 patches of the 256 x 256 image (64 x 64 grid); Swin stages of
    width embed * 2^i with 8 x 8 windows (225-entry bias table per head); odd blocks carry a
    shift mask while the grid is larger than the window; PatchMerging 4C -> 2C between stages;
    head: tscam_conv (527 classes, kernel 2 x 3) and a 527 x 527 linear.
    Fusion ('aff_2d'): mel_conv2d (kernel 4 x 12) and an AFF block with r = 4.
    """
    a = "audio_branch."
    out: dict[str, tuple[int, ...]] = {
        a + "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
        a + "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
        a + "logmel_extractor.melW": (513, 64),
        a + "patch_embed.proj.weight": (embed, 1, 4, 4),
        a + "patch_embed.proj.bias": (embed,),
        a + "patch_embed.norm.weight": (embed,),
        a + "patch_embed.norm.bias": (embed,),
    }
    out.update(_bn(a + "bn0", 64))
    if fusion:
        inter = embed // 4
        out[a + "patch_embed.mel_conv2d.weight"] = (embed, 1, 4, 12)
        out[a + "patch_embed.mel_conv2d.bias"] = (embed,)
        for branch, (c1, b1, c2, b2) in (("local_att", (0, 1, 3, 4)), ("global_att", (1, 2, 4, 5))):
            p = f"{a}patch_embed.fusion_model.{branch}."
            out[f"{p}{c1}.weight"], out[f"{p}{c1}.bias"] = (inter, embed, 1, 1), (inter,)
            out[f"{p}{c2}.weight"], out[f"{p}{c2}.bias"] = (embed, inter, 1, 1), (embed,)
            out.update(_bn(f"{p}{b1}", inter))
            out.update(_bn(f"{p}{b2}", embed))
    grid = 64
    for i, (depth, n_heads) in enumerate(zip(depths, heads, strict=True)):
        dim = embed * 2 ** i
        for j in range(depth):
            b = f"{a}layers.{i}.blocks.{j}."
            if j % 2 == 1 and grid > 8:
                out[b + "attn_mask"] = ((grid // 8) ** 2, 64, 64)
            out[b + "attn.relative_position_bias_table"] = (15 * 15, n_heads)
            out[b + "attn.relative_position_index"] = (64, 64)
            for name, shape in (("attn.qkv", (3 * dim, dim)), ("attn.proj", (dim, dim)),
                                ("mlp.fc1", (4 * dim, dim)), ("mlp.fc2", (dim, 4 * dim))):
                out[f"{b}{name}.weight"], out[f"{b}{name}.bias"] = shape, (shape[0],)
            for norm in ("norm1", "norm2"):
                out[f"{b}{norm}.weight"] = out[f"{b}{norm}.bias"] = (dim,)
        if i < len(depths) - 1:
            out[f"{a}layers.{i}.downsample.reduction.weight"] = (2 * dim, 4 * dim)
            out[f"{a}layers.{i}.downsample.norm.weight"] = (4 * dim,)
            out[f"{a}layers.{i}.downsample.norm.bias"] = (4 * dim,)
            grid //= 2
    final = embed * 2 ** (len(depths) - 1)
    out.update({
        a + "norm.weight": (final,), a + "norm.bias": (final,),
        a + "tscam_conv.weight": (527, final, 2, 3), a + "tscam_conv.bias": (527,),
        a + "head.weight": (527, 527), a + "head.bias": (527,),
    })
    return out


HTSAT = {"tiny": (96, (2, 2, 6, 2)), "base": (128, (2, 2, 12, 2))}


def laion_checkpoint_layout(size: str, fusion: bool, **text: int) -> dict[str, tuple[int, ...]]:
    """Keys/shapes of a published LAION-CLAP ``.pt`` state dict (DDP ``module.`` prefix).

    ``position_ids`` is in the files: upstream ``load_state_dict`` deletes it for
    transformers >= 4.31.
    """
    embed, depths = HTSAT[size]
    final = embed * 8
    out = htsat_layout(embed, depths, (4, 8, 16, 32), fusion)
    out.update(roberta_layout("text_branch.", **text))
    out["text_branch.embeddings.position_ids"] = (1, text.get("positions", 514))
    for tower, width in (("text", text.get("width", 768)), ("audio", final)):
        out[f"{tower}_projection.0.weight"] = (512, width)
        out[f"{tower}_projection.0.bias"] = (512,)
        out[f"{tower}_projection.2.weight"], out[f"{tower}_projection.2.bias"] = (512, 512), (512,)
        for idx in (0, 3):
            out[f"{tower}_transform.sequential.{idx}.weight"] = (512, 512)
            out[f"{tower}_transform.sequential.{idx}.bias"] = (512,)
    out["logit_scale_a"] = out["logit_scale_t"] = ()
    return {f"module.{k}": v for k, v in out.items()}


def hf_layout_from_laion(published: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The same weights under transformers' ClapModel names (its conversion of LAION-CLAP).

    Dropped by the conversion: the STFT/mel buffers (the feature extractor computes mels),
    the AudioSet head (tscam_conv, head), the *_transform MLPs and the shift masks.
    """
    dropped = ("spectrogram_extractor", "logmel_extractor", "tscam_conv", "audio_branch.head.",
               "_transform.", "attn_mask")
    renames = [
        (r"^module\.", ""), (r"^text_branch\.", "text_model."),
        (r"^audio_branch\.", "audio_model.audio_encoder."), (r"\.bn0\.", ".batch_norm."),
        (r"\.norm1\.", ".layernorm_before."), (r"\.norm2\.", ".layernorm_after."),
        (r"\.attn\.proj\.", ".attention.output.dense."), (r"\.attn\.", ".attention.self."),
        (r"\.mlp\.fc1\.", ".intermediate.dense."), (r"\.mlp\.fc2\.", ".output.dense."),
        (r"_projection\.0\.", "_projection.linear1."),
        (r"_projection\.2\.", "_projection.linear2."),
    ]
    out: dict[str, tuple[int, ...]] = {}
    for key, shape in published.items():
        if any(d in key for d in dropped):
            continue
        for pattern, repl in renames:
            key = re.sub(pattern, repl, key)
        if ".attention.self.qkv." in key:  # fused qkv -> query, key, value
            for name in ("query", "key", "value"):
                out[key.replace("qkv", name)] = (shape[0] // 3, *shape[1:])
            continue
        out[key] = shape
    out["text_model.embeddings.token_type_ids"] = out["text_model.embeddings.position_ids"]
    return out


#: config.json of the Hub ids, written out by hand (only the values that shape the weights).
HF_CONFIGS: dict[str, dict] = {
    # The "larger" CLAP ports are HTSAT-base (like the music*_epoch_15 .pt checkpoints); the
    # values of larger_clap_general are taken to equal larger_clap_music_and_speech's.
    "laion/larger_clap_music_and_speech": {
        "audio_config": {"patch_embeds_hidden_size": 128, "hidden_size": 1024,
                         "depths": [2, 2, 12, 2], "num_attention_heads": [4, 8, 16, 32],
                         "window_size": 8, "spec_size": 256, "num_mel_bins": 64,
                         "enable_fusion": False, "projection_dim": 512},
        "text_config": {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
                        "num_attention_heads": 12, "intermediate_size": 3072,
                        "max_position_embeddings": 514, "type_vocab_size": 1,
                        "projection_dim": 512},
        "projection_dim": 512,
    },
    "laion/clap-htsat-unfused": {  # HTSAT-tiny
        "audio_config": {"patch_embeds_hidden_size": 96, "hidden_size": 768,
                         "depths": [2, 2, 6, 2], "num_attention_heads": [4, 8, 16, 32],
                         "window_size": 8, "spec_size": 256, "num_mel_bins": 64,
                         "enable_fusion": False, "projection_dim": 512},
        "text_config": {"vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
                        "num_attention_heads": 12, "intermediate_size": 3072,
                        "max_position_embeddings": 514, "type_vocab_size": 1,
                        "projection_dim": 512},
        "projection_dim": 512,
    },
}
HF_CONFIGS["laion/larger_clap_general"] = HF_CONFIGS["laion/larger_clap_music_and_speech"]


# -- registration --------------------------------------------------------------------------
def test_registered_cheaply_with_the_documented_default():
    info = check_registration("clap", heavy=("transformers", "laion_clap", "clap_module"))
    assert info["modality"] == "audio" and info["embedding_dim"] == 512
    assert info["config"]["model"] == "laion/larger_clap_general"


def test_backend_inference_and_config_round_trip():
    assert CLAPEncoder().backend_name == "transformers"
    assert CLAPEncoder("630k-audioset-best.pt").backend_name == "laion_clap"
    assert CLAPEncoder("/ckpt/my-clap.pt").backend_name == "laion_clap"
    enc = CLAPEncoder("laion/clap-htsat-unfused", revision="abc123", long_audio="crop")
    assert CLAPEncoder(**enc.config()).config() == enc.config()
    with pytest.raises(InvalidInputError, match="long_audio"):
        CLAPEncoder(long_audio="random")
    with pytest.raises(InvalidInputError, match="laion_clap backend only"):
        CLAPEncoder(text_config={"num_hidden_layers": 1})


def test_missing_weights_fail_fast_and_clearly(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CLAPLoadError, match="Hugging Face cache"):
        CLAPEncoder("laion/clap-htsat-unfused", cache_dir=str(tmp_path)).load()
    with pytest.raises(CheckpointError, match="Hugging Face cache"):
        CLAPEncoder("630k-audioset-best.pt", cache_dir=str(tmp_path)).load()
    with pytest.raises(CheckpointError, match="neither a file"):
        CLAPEncoder("no-such-clap.ckpt").load()


def test_offline_stub_tokenizers_are_refused(tmp_path, tokenizer):
    from transformers import RobertaTokenizer

    # transformers 5 offline: a 5-token tokenizer instead of an error.
    stub = RobertaTokenizer.from_pretrained("roberta-base", cache_dir=str(tmp_path))
    with pytest.raises(TokenizerError, match="only 5 tokens"):
        check_tokenizer(stub, 50265, "test")
    with pytest.raises(TokenizerError, match="embeds only 100"):
        check_tokenizer(tokenizer, 100, "test")
    check_tokenizer(tokenizer, len(tokenizer), "test")


# -- transformers backend ------------------------------------------------------------------
def save_tiny_hf(folder, tokenizer, fusion: bool = False) -> str:
    """A tiny ClapModel (random weights) + tokenizer + feature extractor as a local repo."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    torch.manual_seed(0)
    config = ClapConfig(
        audio_config={"patch_embeds_hidden_size": 16, "hidden_size": 128, "depths": [1, 1, 1, 1],
                      "num_attention_heads": [1, 2, 4, 8], "enable_fusion": fusion},
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 37,
                     "max_position_embeddings": 80},
        projection_dim=24,
    )
    ClapModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ClapFeatureExtractor(frequency_min=50, frequency_max=14_000,
                         truncation="fusion" if fusion else "rand_trunc").save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def hf_repo(tmp_path_factory, tokenizer) -> str:
    return save_tiny_hf(tmp_path_factory.mktemp("tiny_clap"), tokenizer)


@pytest.fixture(scope="module")
def hf_tiny(hf_repo) -> CLAPEncoder:
    return get_encoder("clap", model=hf_repo, device="cpu").load()


def test_hf_shapes_normalisation_and_determinism(hf_tiny):
    text = hf_tiny.encode_text(["a dog barks", "waves crash", "music"])
    assert text.shape == (3, 24) and hf_tiny.embedding_dim == 24
    assert torch.allclose(text.norm(dim=1), torch.ones(3), atol=1e-5)
    clips = [(noise(3, 16_000), 16_000), (noise(11, seed=1), SR), (noise(1, 44_100, 2), 44_100)]
    audio = hf_tiny.encode_modal(clips)
    assert audio.shape == (3, 24) and torch.allclose(audio.norm(dim=1), torch.ones(3), atol=1e-5)
    # deterministic and independent of the batch it is in
    assert torch.allclose(hf_tiny.encode_modal(clips[2:]), audio[2:], atol=1e-5)
    assert torch.allclose(hf_tiny.encode_text(["music"]), text[2:], atol=1e-5)


def test_hf_requested_dimension_is_checked(hf_repo, hf_tiny):
    assert hf_tiny.config()["embedding_dim"] == 24
    with pytest.raises(EncoderLoadError, match="produces 24-d embeddings, but embedding_dim=512"):
        CLAPEncoder(hf_repo, embedding_dim=512).load()
    # the size of an unloaded model that nothing names is a guess, and is not stored
    guess = CLAPEncoder("laion/clap-htsat-unfused", cache_dir=str(hf_repo))
    assert guess.embedding_dim == 512 and "embedding_dim" not in guess.config()


def test_errors_subclass_the_core_ones():
    assert issubclass(CLAPLoadError, EncoderLoadError)
    assert issubclass(CheckpointError, CLAPLoadError)
    assert issubclass(CheckpointError, core_errors.CheckpointError)
    assert issubclass(TokenizerError, CLAPLoadError)
    assert issubclass(TokenizerError, core_errors.TokenizerError)


def test_hf_long_audio_windows_and_crop(hf_repo, hf_tiny):
    wave = noise(15)
    windows = [wave[:480_000], wave[-480_000:]]
    each = hf_tiny.encode_modal([(w, SR) for w in windows])
    whole = hf_tiny.encode_modal([(wave, SR)])[0]
    assert torch.allclose(whole, unit(each.sum(0)), atol=1e-5)
    crop = CLAPEncoder(hf_repo, long_audio="crop", device="cpu")
    middle = wave[(len(wave) - 480_000) // 2:][:480_000]
    assert torch.allclose(crop.encode_modal([(wave, SR)]), hf_tiny.encode_modal([(middle, SR)]),
                          atol=1e-5)


def test_hf_file_inputs(hf_tiny, tmp_path):
    import soundfile

    stereo = np.stack([noise(2, 44_100), noise(2, 44_100, seed=3)], axis=1)
    path = tmp_path / "clip.wav"
    soundfile.write(path, stereo, 44_100, subtype="FLOAT")
    from_file = hf_tiny.encode_modal([path])
    from_array = hf_tiny.encode_modal([(stereo.T, 44_100)])
    assert torch.allclose(from_file, from_array, atol=1e-5)


def test_hf_fusion_model_is_batch_independent(tmp_path, tokenizer):
    enc = CLAPEncoder(save_tiny_hf(tmp_path / "fused", tokenizer, fusion=True), device="cpu")
    assert enc.fusion
    short, long = (noise(4), SR), (noise(13, seed=5), SR)
    both = enc.encode_modal([short, long])
    alone = torch.cat([enc.encode_modal([short]), enc.encode_modal([long])])
    assert torch.allclose(both, alone, atol=1e-5)  # deterministic, whatever else is in the batch


def test_bad_inputs_raise_typed_errors_that_name_the_fix(hf_tiny, tmp_path):
    """Wrong types, empty lists, corrupt/empty files and odd shapes, through the encoder (the
    core validates the list; the plugin each item). Missing files, NaN and bare arrays without
    a rate: test_clap_audio.py::test_bad_audio_inputs_raise_clear_errors."""
    import soundfile

    good = tmp_path / "ok.wav"
    soundfile.write(good, noise(0.5, 16_000), 16_000)
    garbage, cut, silent_file = tmp_path / "noise.wav", tmp_path / "cut.wav", tmp_path / "0.wav"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 800, np.uint8).tobytes())
    cut.write_bytes(good.read_bytes()[:20])  # a RIFF header cut short
    soundfile.write(silent_file, np.zeros(0, np.float32), 16_000)  # a valid WAV with no frames
    folder = tmp_path / "dir"
    folder.mkdir()
    clip = noise(0.5)
    cases = [
        # wrong types: the container, then the items
        ("dog.wav", InvalidInputError, "wrap it in a list"),
        (7, InvalidInputError, "expects a list"),
        ([], EmptyInputError, "no inputs"),
        ([42], InvalidInputError, "cannot read audio from a int.*pass a file path"),
        ([(clip, SR, "mono")], InvalidInputError, "cannot read audio from a tuple"),
        ([(SR, clip)], InvalidInputError, r"pass \(waveform, sample_rate\)"),
        ([(clip, 48.0)], InvalidInputError, "int sample rate"),
        ([(clip, 48)], InvalidInputError, "implausibly low.*in Hz"),
        ([(clip[:10], 10**9)], InvalidInputError, "shorter than one sample.*check the sample"),
        ([(clip.astype(np.uint16), SR)], InvalidInputError, "unsupported waveform dtype"),
        # files
        ([folder], InvalidInputError, "is a folder, not an audio file"),
        ([garbage], InvalidInputError, "could not decode.*corrupt"),
        ([cut], InvalidInputError, "could not decode.*corrupt"),
        ([silent_file], InvalidInputError, "holds no samples"),
        # shapes and channel counts
        ([(np.zeros((3, 2, 4_800), np.float32), SR)], InvalidInputError, "shape.*a batch"),
        ([(np.zeros((16, 4_800), np.float32), SR)], InvalidInputError, "16 channels.*batch"),
        ([(np.zeros((4_800, 12), np.float32), SR)], InvalidInputError, "12 channels"),
        ([(np.zeros((2, 0), np.float32), SR)], InvalidInputError, "no samples"),
    ]
    for inputs, error, match in cases:
        with pytest.raises(error, match=match):
            hf_tiny.encode_modal(inputs)
    # what is allowed next to them: 5.1 audio as channels x samples or samples x channels
    surround = np.stack([noise(0.5, seed=i) for i in range(6)])
    out = hf_tiny.encode_modal([good, (surround, SR), (surround.T, SR)])
    assert out.shape == (3, 24) and torch.allclose(out[1], out[2], atol=1e-6)


# -- end to end ----------------------------------------------------------------------------
SOUNDS = ("a dog barking", "rain on a roof", "a man speaking", "drums and bass", "birdsong",
          "a car engine", "people laughing", "waves on a beach")
PLACES = ("far away", "close to the microphone", "in a large hall", "outdoors", "at night",
          "in a small room")


def write_audio(folder, n: int) -> list:
    """``n`` audio inputs: WAV files (int16 mono 16 kHz, float stereo 44.1 kHz) and
    ``(waveform, rate)`` arrays, 0.5-2 s long."""
    import soundfile

    items: list = []
    for i in range(n):
        seconds = 0.5 + (i % 4) * 0.5
        if i % 3 == 0:
            path = folder / f"clip{i:02d}.wav"
            soundfile.write(path, noise(seconds, 16_000, seed=i), 16_000, subtype="PCM_16")
            items.append(path)
        elif i % 3 == 1:
            path = folder / f"clip{i:02d}.wav"
            stereo = np.stack([noise(seconds, 44_100, i), noise(seconds, 44_100, i + 100)], 1)
            soundfile.write(path, stereo, 44_100, subtype="FLOAT")
            items.append(path)
        else:
            items.append((noise(seconds, 22_050, seed=i), 22_050))
    return items


def test_trains_end_to_end_and_reloads_from_the_bundle(hf_repo, tmp_path):
    """offsets -> training -> embed files and arrays -> save -> from_pretrained."""
    enc = tm.get_encoder("clap", model=hf_repo, device="cpu")
    assert enc.embedding_dim == 24 and not enc.is_loaded  # read from the folder's config.json
    texts = [f"{s} {p}" for p in PLACES for s in SOUNDS]  # unpaired with the clips
    result = check_encoder(enc, texts, write_audio(tmp_path, 24), tmp_path, atol=1e-6,
                           bad_inputs=[(tmp_path / "gone.wav", MissingInputFileError)])
    stored = json.loads((result.bundle / "config.json").read_text())["modalities"]["audio"]
    assert stored["encoder"] == {"model": hf_repo, "backend": "transformers",
                                 "long_audio": "windows", "embedding_dim": 24}
    # a config stored by earlier versions (defaults left out) rebuilds the same encoder
    old = {"model": hf_repo, "backend": "transformers", "embedding_dim": 24}
    assert tm.get_encoder("clap", **old).config() == stored["encoder"]


def test_local_paths_are_stored_absolute(hf_repo, tmp_path, monkeypatch):
    """A bundle must rebuild the encoder from any working directory."""
    folder = os.path.basename(hf_repo)
    monkeypatch.chdir(os.path.dirname(hf_repo))
    enc = CLAPEncoder(folder, tokenizer=folder)
    assert enc.config()["model"] == enc.config()["tokenizer"] == hf_repo
    assert enc.embedding_dim == 24
    (tmp_path / "clap.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert CLAPEncoder("clap.pt").config()["model"] == str(tmp_path / "clap.pt")
    assert CLAPEncoder("630k-audioset-best.pt").config()["model"] == "630k-audioset-best.pt"
    assert CLAPEncoder().config()["model"] == "laion/larger_clap_general"


def test_hf_weights_load_strictly(tmp_path, tokenizer):
    from safetensors.torch import load_file, save_file

    repo = save_tiny_hf(tmp_path / "broken", tokenizer)
    weights = load_file(f"{repo}/model.safetensors")
    del weights["audio_projection.linear1.weight"]
    save_file(weights, f"{repo}/model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="audio_projection.linear1.weight"):
        CLAPEncoder(repo).load()


@pytest.mark.parametrize("model_id,size", [("laion/larger_clap_general", "base"),
                                           ("laion/larger_clap_music_and_speech", "base"),
                                           ("laion/clap-htsat-unfused", "tiny")])
def test_hf_architectures_match_the_converted_laion_layout(model_id, size):
    from transformers import ClapConfig, ClapModel

    with torch.device("meta"):
        model = ClapModel(ClapConfig(**HF_CONFIGS[model_id]))
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = hf_layout_from_laion(laion_checkpoint_layout(size, fusion=False))
    assert sorted(set(got) ^ set(expected)) == []
    assert [k for k in got if got[k] != expected[k]] == []
    assert model.config.projection_dim == CLAPEncoder().embedding_dim == 512


# -- laion_clap backend --------------------------------------------------------------------
def _meta_roberta_base() -> torch.nn.Module:
    from transformers import RobertaConfig, RobertaModel

    with torch.device("meta"):
        return RobertaModel(RobertaConfig(**laion.ROBERTA_BASE))


def _as_published(model: torch.nn.Module, positions: int = 514) -> dict[str, tuple[int, ...]]:
    state = {f"module.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = (1, positions)
    return state


def _check_layout(size: str, fusion: bool) -> None:
    arch = {"tiny": "HTSAT-tiny", "base": "HTSAT-base"}[size]
    model = laion.build_laion_model(arch, fusion, text_model=_meta_roberta_base(),
                                    init_weights=False)
    got, expected = _as_published(model), laion_checkpoint_layout(size, fusion)
    assert sorted(set(got) ^ set(expected)) == []
    assert [k for k in got if got[k] != expected[k]] == []
    assert model.joint_embed_shape == 512


def test_laion_630k_audioset_best_layout():
    """``630k-audioset-best.pt`` / ``630k-best.pt``: HTSAT-tiny + RoBERTa, no fusion."""
    _check_layout("tiny", fusion=False)


@pytest.mark.slow
def test_laion_630k_audioset_fusion_best_layout():
    _check_layout("tiny", fusion=True)


@pytest.mark.slow
def test_laion_music_speech_audioset_layout():
    """``music_speech_audioset_epoch_15_esc_89.98.pt``: HTSAT-base + RoBERTa."""
    _check_layout("base", fusion=False)


def test_checkpoint_architecture_is_read_from_its_tensors():
    tiny = {k[7:]: torch.empty(0) for k in laion_checkpoint_layout("tiny", False)}
    tiny["audio_branch.patch_embed.proj.weight"] = torch.empty(96, 1, 4, 4)
    assert laion.infer_architecture(tiny) == ("HTSAT-tiny", False)
    tiny["audio_branch.patch_embed.fusion_model.local_att.0.weight"] = torch.empty(0)
    tiny["audio_branch.patch_embed.proj.weight"] = torch.empty(128, 1, 4, 4)
    assert laion.infer_architecture(tiny) == ("HTSAT-base", True)
    with pytest.raises(CheckpointError, match="not an HTSAT"):
        laion.infer_architecture({"audio_branch.conv_block1.conv1.weight": torch.empty(0)})


TINY_TEXT = {"layers": 1, "ffn": 64, "positions": 80}


def fake_published_checkpoint(path, vocab: int) -> None:
    """Random tensors in exactly the published layout (HTSAT-tiny + a 1-layer RoBERTa)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in laion_checkpoint_layout("tiny", False, vocab=vocab, **TINY_TEXT).items():
        if key.endswith(("relative_position_index", "position_ids", "num_batches_tracked")):
            high = 225 if "relative" in key else 78
            state[key] = torch.randint(0, high, shape, generator=gen)
        elif key.endswith(("running_var", "attn_mask")):
            state[key] = torch.rand(shape, generator=gen) + (0.5 if "var" in key else -1.0)
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    torch.save({"epoch": 45, "state_dict": state, "best_mAP": np.float64(0.42)}, path)


@pytest.fixture(scope="module")
def laion_ckpt(tmp_path_factory, tokenizer) -> str:
    path = tmp_path_factory.mktemp("laion") / "tiny-630k-layout.pt"
    fake_published_checkpoint(path, len(tokenizer))
    return str(path)


@pytest.fixture(scope="module")
def laion_tiny(laion_ckpt, tokenizer) -> CLAPEncoder:
    enc = CLAPEncoder(laion_ckpt, tokenizer=tokenizer, text_config={"num_attention_heads": 2},
                      device="cpu")
    return enc.load()


LAION_CLIPS = [(noise(2, 16_000), 16_000), (noise(3, seed=4), SR)]


@pytest.fixture(scope="module")
def laion_outputs(laion_tiny) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over two texts and two clips (HTSAT-tiny costs ~1.5 s per clip on 2 cores)."""
    text = laion_tiny.encode_text(["a dog barks", "a man speaks"])
    return text, laion_tiny.encode_modal(LAION_CLIPS)


def test_laion_published_format_loads_strictly_and_encodes(laion_tiny, laion_outputs):
    assert laion_tiny.backend_name == "laion_clap" and not laion_tiny.fusion
    text, audio = laion_outputs
    assert text.shape == (2, 512) and torch.allclose(text.norm(dim=1), torch.ones(2), atol=1e-5)
    assert audio.shape == (2, 512) and torch.allclose(audio.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(laion_tiny.encode_text(["a man speaks"]), text[1:], atol=1e-6)
    # Audio batch independence is checked against the upstream call on the clip alone in
    # test_laion_matches_upstream_clap_module_calls (an HTSAT-tiny pass costs ~1.5-3 s here).


def test_laion_matches_upstream_clap_module_calls(laion_tiny, laion_outputs, tokenizer):
    """Same numbers as CLAP_Module's path: int16 round trip, repeat-pad, get_audio_embedding;
    RoBERTa tokens padded to 77, get_text_embedding. The reference embeds the clip alone and
    ``laion_outputs`` embedded it in a batch of two, so this also shows the embedding does not
    depend on the batch."""
    from textme_clap.audio import quantize_int16, repeat_pad

    model = laion_tiny.backend.model
    wave = LAION_CLIPS[1][0]
    feature = {"waveform": torch.from_numpy(repeat_pad(quantize_int16(wave), 480_000)),
               "longer": torch.tensor([False])}
    with torch.no_grad():
        expected_audio = model.get_audio_embedding([feature])
        tokens = tokenizer(["a man speaks"], padding="max_length", truncation=True,
                           max_length=77, return_tensors="pt")
        expected_text = model.get_text_embedding(dict(tokens))
    text, audio = laion_outputs
    assert torch.allclose(audio[1:], expected_audio, atol=1e-5)
    assert torch.allclose(text[1:], expected_text, atol=1e-5)


def test_laion_checkpoint_errors_name_the_problem(laion_tiny, laion_ckpt, tmp_path):
    state = laion.read_checkpoint(laion_ckpt)
    state.pop("audio_projection.2.bias")
    state["text_branch.surprise"] = torch.zeros(1)
    model = laion_tiny.backend.model  # checked before anything is copied into it
    with pytest.raises(CheckpointError, match=r"audio_projection\.2\.bias.*text_branch\.surprise"):
        laion.load_weights(model, state)
    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1e-4)}, pickled)
    with pytest.raises(CheckpointError, match="safely"):
        CLAPEncoder(str(pickled)).load()
    empty = tmp_path / "empty.pt"
    torch.save({"state_dict": {}}, empty)
    with pytest.raises(CheckpointError, match="no state dict"):
        CLAPEncoder(str(empty)).load()
