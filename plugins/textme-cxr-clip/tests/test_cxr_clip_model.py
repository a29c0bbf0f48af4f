"""The CXR-CLIP network: the published checkpoints' key layout (full size, on the meta device),
the Swin port against transformers' ``SwinModel``, ResNet-50 against torchvision, the global
features and text pooling of upstream ``CXRClip``, projection heads and strict loading."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from cxr_testlib import TINY_RESNET_SPEC, TINY_SWIN_SPEC, TINY_TEXT, random_state
from textme_cxr_clip import ArchitectureError, CheckpointMismatchError
from textme_cxr_clip.architecture import (
    BIO_CLINICAL_BERT,
    PRESETS,
    Architecture,
    BertSpec,
    SwinSpec,
    architecture_from_state,
)
from textme_cxr_clip.model import build_model, load_weights
from textme_cxr_clip.swin import SwinModel

Shape = tuple[int, ...]


# -- the published layouts, written out from the upstream source ------------------------------
def _linear(layout: dict, name: str, d_out: int, d_in: int, bias: bool = True) -> None:
    layout[name + ".weight"] = (d_out, d_in)
    if bias:
        layout[name + ".bias"] = (d_out,)


def _norm(layout: dict, name: str, dim: int) -> None:
    layout[name + ".weight"] = layout[name + ".bias"] = (dim,)


def _batchnorm(layout: dict, name: str, dim: int) -> None:
    for p in ("weight", "bias", "running_mean", "running_var"):
        layout[f"{name}.{p}"] = (dim,)
    layout[name + ".num_batches_tracked"] = ()


def bio_clinical_bert_layout() -> dict[str, Shape]:
    """``text_encoder.text_encoder.*``: ``AutoModel.from_pretrained('emilyalsentzer/
    Bio_ClinicalBERT')`` (a BertModel with its pooler) as transformers 4.26 saved it - including
    the then-persistent ``embeddings.position_ids`` buffer. Config: vocab 28996, hidden 768,
    12 layers, FFN 3072, 512 positions, 2 token types."""
    p, h, ffn = "text_encoder.text_encoder.", 768, 3072
    layout: dict[str, Shape] = {
        p + "embeddings.word_embeddings.weight": (28996, h),
        p + "embeddings.position_embeddings.weight": (512, h),
        p + "embeddings.token_type_embeddings.weight": (2, h),
        p + "embeddings.position_ids": (1, 512),
    }
    _norm(layout, p + "embeddings.LayerNorm", h)
    for i in range(12):
        b = f"{p}encoder.layer.{i}."
        for m in ("query", "key", "value"):
            _linear(layout, b + "attention.self." + m, h, h)
        _linear(layout, b + "attention.output.dense", h, h)
        _norm(layout, b + "attention.output.LayerNorm", h)
        _linear(layout, b + "intermediate.dense", ffn, h)
        _linear(layout, b + "output.dense", h, ffn)
        _norm(layout, b + "output.LayerNorm", h)
    _linear(layout, p + "pooler.dense", h, h)
    return layout


def heads_layout(image_dim: int) -> dict[str, Shape]:
    """``projection_head: {name: linear, proj_dim: 512}`` for both towers, plus
    ``logit_scale`` (``temperature: 0.07``)."""
    layout: dict[str, Shape] = {"logit_scale": ()}
    _linear(layout, "image_projection.projection", 512, image_dim)
    _linear(layout, "text_projection.projection", 512, 768)
    return layout


def r50_layout() -> dict[str, Shape]:
    """``r50_*.tar`` ``model``: upstream ``ResNet50`` = torchvision ``resnet50`` with ``fc``
    deleted (SyncBatchNorm keeps BatchNorm's names), under ``image_encoder.resnet``."""
    p = "image_encoder.resnet."
    layout: dict[str, Shape] = {p + "conv1.weight": (64, 3, 7, 7)}
    _batchnorm(layout, p + "bn1", 64)
    inplanes = 64
    for stage, (blocks, planes) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=1):
        for j in range(blocks):
            b = f"{p}layer{stage}.{j}."
            layout[b + "conv1.weight"] = (planes, inplanes, 1, 1)
            layout[b + "conv2.weight"] = (planes, planes, 3, 3)
            layout[b + "conv3.weight"] = (planes * 4, planes, 1, 1)
            for k, dim in ((1, planes), (2, planes), (3, planes * 4)):
                _batchnorm(layout, b + f"bn{k}", dim)
            if j == 0:
                layout[b + "downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                _batchnorm(layout, b + "downsample.1", planes * 4)
            inplanes = planes * 4
    return {**layout, **bio_clinical_bert_layout(), **heads_layout(2048)}


def swint_layout() -> dict[str, Shape]:
    """``swint_*.tar`` ``model``: ``SwinModel.from_pretrained('microsoft/swin-tiny-patch4-
    window7-224')`` (transformers 4.26 names; persistent ``relative_position_index``; the
    pooler has no parameters) under ``image_encoder.image_encoder``. Swin-T: embed 96, depths
    2-2-6-2, heads 3-6-12-24, window 7, patch 4, MLP ratio 4."""
    p = "image_encoder.image_encoder."
    layout: dict[str, Shape] = {
        p + "embeddings.patch_embeddings.projection.weight": (96, 3, 4, 4),
        p + "embeddings.patch_embeddings.projection.bias": (96,),
    }
    _norm(layout, p + "embeddings.norm", 96)
    for i, (depth, heads) in enumerate(zip((2, 2, 6, 2), (3, 6, 12, 24))):
        dim = 96 * 2 ** i
        for j in range(depth):
            b = f"{p}encoder.layers.{i}.blocks.{j}."
            _norm(layout, b + "layernorm_before", dim)
            layout[b + "attention.self.relative_position_bias_table"] = (13 * 13, heads)
            layout[b + "attention.self.relative_position_index"] = (49, 49)
            for m in ("query", "key", "value"):
                _linear(layout, b + "attention.self." + m, dim, dim)
            _linear(layout, b + "attention.output.dense", dim, dim)
            _norm(layout, b + "layernorm_after", dim)
            _linear(layout, b + "intermediate.dense", 4 * dim, dim)
            _linear(layout, b + "output.dense", dim, 4 * dim)
        if i < 3:
            d = f"{p}encoder.layers.{i}.downsample."
            _linear(layout, d + "reduction", 2 * dim, 4 * dim, bias=False)
            _norm(layout, d + "norm", 4 * dim)
    _norm(layout, p + "layernorm", 768)
    return {**layout, **bio_clinical_bert_layout(), **heads_layout(768)}


UPSTREAM_CONFIGS = {
    "r50": {"model": {"temperature": 0.07,
                      "image_encoder": {"source": "torchvision", "name": "resnet"},
                      "text_encoder": {"name": BIO_CLINICAL_BERT, "pooling": "eos"},
                      "projection_head": {"name": "linear", "dropout": 0.1, "proj_dim": 512}},
            "tokenizer": {"pretrained_model_name_or_path": BIO_CLINICAL_BERT},
            "base": {"image_size": 224, "text_max_length": 256}},
}
UPSTREAM_CONFIGS["swint"] = {**UPSTREAM_CONFIGS["r50"], "model": {
    **UPSTREAM_CONFIGS["r50"]["model"],
    "image_encoder": {"source": "huggingface", "name": "microsoft/swin-tiny-patch4-window7-224",
                      "model_type": "swin"}}}
LAYOUTS = {"r50": r50_layout, "swint": swint_layout}


@pytest.fixture(scope="module", params=["r50", "swint"])
def full_size(request):
    family = request.param
    return family, build_model(PRESETS[family], "meta"), LAYOUTS[family]()


def test_full_size_models_match_the_published_layout(full_size):
    family, model, layout = full_size
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    stale = "text_encoder.text_encoder.embeddings.position_ids"  # saved by transformers 4.26
    expected = {k: v for k, v in layout.items() if k != stale}
    assert sorted(set(got) ^ set(expected)) == []
    assert {k for k in got if got[k] != expected[k]} == set()
    assert PRESETS[family].embedding_dim == 512
    assert PRESETS[family].image_dim == (2048 if family == "r50" else 768)
    # the checkpoint layout (with the stale position_ids buffer) loads strictly
    load_weights(model, {k: torch.empty(s, device="meta") for k, s in layout.items()})


def test_text_tower_is_bio_clinical_bert_built_by_transformers():
    """Our text tower holds exactly the tensors of BertModel(Bio_ClinicalBERT's config)."""
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        reference = BertModel(BertConfig(vocab_size=28996, hidden_size=768, num_hidden_layers=12,
                                         num_attention_heads=12, intermediate_size=3072))
    ours = build_model(PRESETS["swint"], "meta").text_encoder.text_encoder
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}
    assert ours.config.vocab_size == 28996 and ours.config.layer_norm_eps == 1e-12


@pytest.mark.parametrize("family", ["r50", "swint"])
def test_architecture_is_read_off_the_published_layout(family):
    state = {k: torch.empty(s, device="meta") for k, s in LAYOUTS[family]().items()}
    arch = architecture_from_state(state, UPSTREAM_CONFIGS[family])
    assert arch == PRESETS[family]
    assert architecture_from_state(state) == PRESETS[family]  # the defaults are upstream's
    assert arch.mean == ((0.485, 0.456, 0.406) if family == "r50" else (0.5, 0.5, 0.5))


def test_architecture_contradictions_and_round_trip():
    state = {k: torch.empty(s, device="meta") for k, s in r50_layout().items()}
    bad = {**UPSTREAM_CONFIGS["r50"], "model": {**UPSTREAM_CONFIGS["r50"]["model"],
                                                "projection_head": {"name": "mlp"}}}
    with pytest.raises(ArchitectureError, match="'mlp' projection head but its weights hold"):
        architecture_from_state(state, bad)
    swin_state = {k: torch.empty(s, device="meta") for k, s in swint_layout().items()}
    with pytest.raises(ArchitectureError, match="names image encoder 'resnet'"):
        architecture_from_state(swin_state, UPSTREAM_CONFIGS["r50"])
    with pytest.raises(ArchitectureError, match="not a CXR-CLIP"):
        architecture_from_state({"visual.proj": torch.zeros(2)})
    arch = PRESETS["swint"]
    assert Architecture.from_dict(arch.to_dict()) == arch
    with pytest.raises(ArchitectureError, match="unknown architecture field"):
        Architecture.from_dict({**arch.to_dict(), "pooler": "mean"})
    with pytest.raises(ArchitectureError, match="pooling must be"):
        Architecture.from_dict({**arch.to_dict(), "pooling": "max"})


# -- the Swin port against transformers --------------------------------------------------------
_RENAMES = (  # transformers 4.26 name -> transformers 5 name
    ("attention.self.query", "attention.q_proj"), ("attention.self.key", "attention.k_proj"),
    ("attention.self.value", "attention.v_proj"), ("attention.output.dense", "attention.o_proj"),
    ("attention.self.relative_position_bias_table",
     "attention.relative_position_bias.relative_position_bias_table"),
    ("intermediate.dense", "mlp.fc1"), (".output.dense", ".mlp.fc2"),
)


def _as_current_transformers(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        if k.endswith("relative_position_index"):
            continue
        for old, new in _RENAMES:
            k = k.replace(old, new)
        out[k] = v
    return out


@pytest.mark.parametrize("spec,size", [
    (TINY_SWIN_SPEC, 64),  # maps 16 / 8 / 4 with window 4: the last stage has no shift
    (SwinSpec(embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4), 60),  # padding
    (SwinSpec(), 224),  # Swin-T itself: 56 / 28 / 14 / 7 with window 7
])
def test_swin_port_equals_transformers_swin(spec, size):
    from transformers import SwinConfig
    from transformers import SwinModel as HFSwinModel

    torch.manual_seed(0)
    ours = SwinModel(spec).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.1 * torch.randn_like(p))
    reference = HFSwinModel(SwinConfig(
        image_size=size, patch_size=spec.patch_size, embed_dim=spec.embed_dim,
        depths=list(spec.depths), num_heads=list(spec.num_heads), window_size=spec.window_size,
        drop_path_rate=0.0)).eval()
    reference.load_state_dict(_as_current_transformers(ours.state_dict()), strict=True)
    pixels = torch.randn(2, 3, size, size)
    with torch.no_grad():
        got = ours(pixels)
        out = reference(pixel_values=pixels)
    torch.testing.assert_close(got, out.last_hidden_state, atol=1e-5, rtol=1e-5)
    # CXR-CLIP's global feature is token 0, which is not transformers' pooled output
    assert not torch.allclose(got[:, 0], out.pooler_output, atol=1e-3)


def test_swin_global_feature_is_the_first_token(tokenizer_arch_swin):
    model = build_model(tokenizer_arch_swin, seed=0)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        hidden = model.image_encoder(pixels)
        assert hidden.shape == (2, 4 * 4, TINY_SWIN_SPEC.out_dim)
        torch.testing.assert_close(model.encode_image(pixels), hidden[:, 0])
        torch.testing.assert_close(model.embed_image(pixels),
                                   model.image_projection.projection(hidden[:, 0]))


def test_resnet_encoder_is_torchvision_without_fc(tokenizer_arch_r50):
    from torchvision.models.resnet import Bottleneck, ResNet

    model = build_model(tokenizer_arch_r50, seed=0)
    reference = ResNet(Bottleneck, list(TINY_RESNET_SPEC.layers),
                       width_per_group=TINY_RESNET_SPEC.width_per_group).eval()
    reference.fc = torch.nn.Identity()
    reference.load_state_dict(model.image_encoder.resnet.state_dict(), strict=False)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(pixels), reference(pixels))
    assert not hasattr(model.image_encoder.resnet, "fc")
    assert model.encode_image(pixels).shape == (2, 2048)


@pytest.fixture(scope="module")
def tokenizer_arch_swin():
    return Architecture(image_encoder="swin", swin=TINY_SWIN_SPEC, text=TINY_TEXT, proj_dim=32,
                        image_size=64)


@pytest.fixture(scope="module")
def tokenizer_arch_r50():
    return Architecture(image_encoder="resnet", swin=None, resnet=TINY_RESNET_SPEC,
                        text=TINY_TEXT, proj_dim=32, image_size=64)


# -- text pooling ------------------------------------------------------------------------------
def test_eos_pooling_reads_the_sep_token_and_ignores_padding(tokenizer_arch_swin):
    model = build_model(tokenizer_arch_swin, seed=0)
    sep, cls, pad = 3, 2, 0
    short = torch.tensor([[cls, 40, 41, sep, pad, pad]])
    long = torch.tensor([[cls, 40, 42, 43, 44, sep]])
    batch = {"input_ids": torch.cat([short, long]),
             "token_type_ids": torch.zeros(2, 6, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])}
    with torch.no_grad():
        hidden = model.text_encoder(batch)
        pooled = model.encode_text(batch)
        alone = model.encode_text({k: v[:1, :4] for k, v in batch.items()})
    torch.testing.assert_close(pooled[0], hidden[0, 3])  # the [SEP] of the short text
    torch.testing.assert_close(pooled[1], hidden[1, 5])
    torch.testing.assert_close(pooled[0], alone[0], atol=1e-5, rtol=1e-5)  # padding is masked


@pytest.mark.parametrize("pooling", ["bos", "mean"])
def test_other_upstream_poolings(tokenizer_arch_swin, pooling):
    from dataclasses import replace

    model = build_model(replace(tokenizer_arch_swin, pooling=pooling), seed=0)
    batch = {"input_ids": torch.tensor([[2, 40, 3, 0]]),
             "token_type_ids": torch.zeros(1, 4, dtype=torch.long),
             "attention_mask": torch.tensor([[1, 1, 1, 0]])}
    with torch.no_grad():
        hidden = model.text_encoder(batch)
        expected = hidden[0, 0] if pooling == "bos" else hidden[0, :3].mean(0)
        torch.testing.assert_close(model.encode_text(batch)[0], expected, atol=1e-5, rtol=1e-5)


# -- projection heads and strict loading -------------------------------------------------------
def test_mlp_projection_head_matches_upstream_formula(tokenizer_arch_swin):
    from dataclasses import replace

    arch = replace(tokenizer_arch_swin, projection="mlp")
    model = build_model(arch, seed=0)
    head = model.image_projection
    assert sorted(k for k in model.state_dict() if k.startswith("image_projection")) == [
        "image_projection.fc.bias", "image_projection.fc.weight",
        "image_projection.layer_norm.bias", "image_projection.layer_norm.weight",
        "image_projection.projection.bias", "image_projection.projection.weight"]
    x = torch.randn(3, TINY_SWIN_SPEC.out_dim)
    with torch.no_grad():
        p = head.projection(x)
        expected = torch.nn.functional.layer_norm(
            head.fc(torch.nn.functional.gelu(p)) + p, (32,), head.layer_norm.weight,
            head.layer_norm.bias)
        torch.testing.assert_close(head(x), expected)
    assert architecture_from_state(model.state_dict()).projection == "mlp"


def test_loading_is_strict(tokenizer_arch_swin):
    state = random_state(tokenizer_arch_swin)
    model = build_model(tokenizer_arch_swin)
    load_weights(model, {**state, "text_encoder.text_encoder.embeddings.position_ids":
                         torch.arange(512)[None]})  # stale buffer of transformers 4.26: ignored
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    index = next(k for k in state if k.endswith("relative_position_index"))
    without_index = {k: v for k, v in state.items() if k != index}
    load_weights(build_model(tokenizer_arch_swin), without_index)  # recomputed

    cases = [
        ({k: v for k, v in state.items() if k != "text_projection.projection.bias"}, "1 missing"),
        ({**state, "image_encoder.image_encoder.pooler.weight": torch.zeros(1)}, "1 unexpected"),
        ({**state, "logit_scale": torch.zeros(2)}, "other shapes.*logit_scale"),
        ({**state, index: state[index].flip(0)}, "another window size"),
    ]
    for bad, match in cases:
        with pytest.raises(CheckpointMismatchError, match=match):
            load_weights(build_model(tokenizer_arch_swin), bad)


def test_tiny_architecture_is_read_back_from_its_weights(tokenizer_arch_swin, tokenizer_arch_r50):
    for arch in (tokenizer_arch_swin, tokenizer_arch_r50):
        state = build_model(arch, "meta").state_dict()
        assert architecture_from_state(state, image_size=64) == arch
    assert BertSpec().vocab_size == 28996
