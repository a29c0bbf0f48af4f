"""The ViCLIP port itself: published key layouts (full size, on the meta device), the forward
pass against a from-scratch functional reference, the temporal embedding and the joint
attention, the text tower's causal EOT pooling, and the tokenizer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from textme_viclip.encoder import build_viclip
from textme_viclip.model import VARIANTS, ViCLIP, config_for
from textme_viclip.tokenizer import ViCLIPTokenizer
from viclip_testlib import TINY_ARCH


# -- the published layouts -----------------------------------------------------------------
def published_layout(vis_w: int, vis_layers: int, patch: int, txt_w: int, txt_layers: int,
                     dim: int) -> dict[str, tuple[int, ...]]:
    """Keys and shapes under ``model`` in a released ViCLIP checkpoint.

    Written by hand from OpenGVLab/InternVideo ``Data/InternVid/viclip/``: ``viclip.py`` (the
    ``ViCLIP`` module: ``vision_encoder``, ``text_encoder``, ``temp``; loaded with a strict
    ``load_state_dict``), ``viclip_vision.py`` (``VisionTransformer``: bias-free ``Conv3d``
    ``conv1`` with kernel (1, p, p), ``class_embedding``, ``positional_embedding``
    [(224/p)^2 + 1, w], ``temporal_positional_embedding`` [1, 8, w], ``ln_pre``,
    ``transformer.resblocks.N`` with ``attn`` (``nn.MultiheadAttention``), ``ln_1``,
    ``mlp.c_fc``, ``mlp.c_proj``, ``ln_2``, then ``ln_post``, ``proj`` [w, dim]) and
    ``viclip_text.py`` (``CLIP_TEXT``: ``token_embedding`` 49408 x w, ``positional_embedding``
    [32, w] - ViCLIP's ``max_txt_l`` -, the same blocks, ``ln_final``, ``text_projection``).
    """
    layout: dict[str, tuple[int, ...]] = {
        "temp": (),
        "vision_encoder.conv1.weight": (vis_w, 3, 1, patch, patch),
        "vision_encoder.class_embedding": (vis_w,),
        "vision_encoder.positional_embedding": ((224 // patch) ** 2 + 1, vis_w),
        "vision_encoder.temporal_positional_embedding": (1, 8, vis_w),
        "vision_encoder.proj": (vis_w, dim),
        "text_encoder.token_embedding.weight": (49408, txt_w),
        "text_encoder.positional_embedding": (32, txt_w),
        "text_encoder.text_projection": (txt_w, dim),
    }
    for norm, width in (("vision_encoder.ln_pre", vis_w), ("vision_encoder.ln_post", vis_w),
                        ("text_encoder.ln_final", txt_w)):
        layout[f"{norm}.weight"] = layout[f"{norm}.bias"] = (width,)
    for prefix, width, layers in (("vision_encoder.transformer", vis_w, vis_layers),
                                  ("text_encoder.transformer", txt_w, txt_layers)):
        for i in range(layers):
            block = f"{prefix}.resblocks.{i}."
            for norm in ("ln_1", "ln_2"):
                layout[block + norm + ".weight"] = layout[block + norm + ".bias"] = (width,)
            layout[block + "attn.in_proj_weight"] = (3 * width, width)
            layout[block + "attn.in_proj_bias"] = (3 * width,)
            layout[block + "attn.out_proj.weight"] = (width, width)
            layout[block + "attn.out_proj.bias"] = (width,)
            layout[block + "mlp.c_fc.weight"] = (4 * width, width)
            layout[block + "mlp.c_fc.bias"] = (4 * width,)
            layout[block + "mlp.c_proj.weight"] = (width, 4 * width)
            layout[block + "mlp.c_proj.bias"] = (width,)
    return layout


@pytest.mark.parametrize("variant, numbers, n_params", [
    # ViT-L/14 video tower (1024 x 24) + CLIP-L text (768 x 12) -> 768-d
    ("ViCLIP-L-14", (1024, 24, 14, 768, 12, 768), 427_590_145),
    # ViT-B/16 video tower (768 x 12) + CLIP-B text (512 x 12) -> 512-d
    ("ViCLIP-B-16", (768, 12, 16, 512, 12, 512), 149_603_841),
])
def test_full_size_architecture_matches_the_published_checkpoint(variant, numbers, n_params):
    model = build_viclip(VARIANTS[variant], "meta")
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = published_layout(*numbers)
    assert sorted(set(got) ^ set(expected)) == []
    assert {k for k in got if got[k] != expected[k]} == set()
    assert sum(v.numel() for v in model.state_dict().values()) == n_params
    assert model.vision_encoder.conv1.bias is None
    assert VARIANTS[variant].embed_dim == numbers[-1]


def test_config_overrides_are_validated():
    assert config_for("ViCLIP-L-14", {"vision_layers": 2}).vision_layers == 2
    with pytest.raises(ValueError, match="unknown ViCLIP config fields"):
        config_for("ViCLIP-L-14", {"layers": 2})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        config_for("ViCLIP-L-14", {"image_size": 30})
    with pytest.raises(ValueError, match="divisible"):
        config_for("ViCLIP-L-14", {"text_heads": 5})


# -- the forward pass ----------------------------------------------------------------------
def random_tiny(seed: int = 0, temporal_scale: float = 0.5) -> ViCLIP:
    """Tiny ViCLIP with every parameter random (incl. the zero-initialised temporal one)."""
    torch.manual_seed(seed)
    model = ViCLIP(config_for("ViCLIP-L-14", TINY_ARCH)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("temporal_positional_embedding"):
                p.copy_(temporal_scale * torch.randn_like(p))
            elif p.ndim == 1 and "ln" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p) if name.endswith("weight")
                        else 0.1 * torch.randn_like(p))
    return model


def reference_attention(x, in_w, in_b, out_w, out_b, heads, mask=None):
    """Multi-head attention written out with matmuls (batch-first)."""
    b, n, d = x.shape
    q, k, v = (x @ in_w.T + in_b).split(d, dim=-1)
    split = lambda t: t.view(b, n, heads, d // heads).transpose(1, 2)
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if mask is not None:
        scores = scores + mask
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    return out @ out_w.T + out_b


def reference_blocks(x, sd, prefix, layers, heads, mask=None):
    w = x.shape[-1]
    for i in range(layers):
        p = f"{prefix}.resblocks.{i}."
        h = F.layer_norm(x, (w,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        x = x + reference_attention(h, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"],
                                    sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"],
                                    heads, mask)
        h = F.layer_norm(x, (w,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        h = h @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)
        x = x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]
    return x


def reference_video(sd, video, cfg):
    """Upstream's inference path, step by step, with one token per (patch, frame) pair ordered
    patch-major as upstream's ``rearrange('(b n) t m -> b (n t) m')`` leaves them."""
    v = "vision_encoder."
    b, t = video.shape[:2]
    g, p, w = cfg.grid, cfg.patch_size, cfg.vision_width
    tokens = []
    for bi in range(b):
        seq = [sd[v + "class_embedding"] + sd[v + "positional_embedding"][0]]
        for row in range(g):
            for col in range(g):
                for ti in range(t):  # patch-major, frame-minor
                    patch = video[bi, ti, :, row * p:(row + 1) * p, col * p:(col + 1) * p]
                    emb = torch.einsum("chw,ochw->o", patch, sd[v + "conv1.weight"][:, :, 0])
                    emb = emb + sd[v + "positional_embedding"][1 + row * g + col]
                    seq.append(emb + sd[v + "temporal_positional_embedding"][0, ti])
        tokens.append(torch.stack(seq))
    x = torch.stack(tokens)
    x = F.layer_norm(x, (w,), sd[v + "ln_pre.weight"], sd[v + "ln_pre.bias"])
    x = reference_blocks(x, sd, v + "transformer", cfg.vision_layers, cfg.vision_heads)
    cls = F.layer_norm(x[:, 0], (w,), sd[v + "ln_post.weight"], sd[v + "ln_post.bias"])
    return cls @ sd[v + "proj"]


def test_video_tower_matches_a_functional_reference():
    model = random_tiny()
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    video = torch.randn(2, 8, 3, 28, 28)
    with torch.no_grad():
        got = model.encode_video(video)
    expected = reference_video(sd, video, model.config)
    assert got.shape == (2, 16)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_joint_attention_sees_every_token_and_the_temporal_embedding_orders_frames():
    """1 + 8 x 4 tokens enter the transformer (nothing dropped); without the temporal
    embedding, shuffling frames changes nothing (attention is order-free); with it, it does."""
    model = random_tiny()
    seen = []
    hook = model.vision_encoder.ln_pre.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    video = torch.randn(1, 8, 3, 28, 28)
    shuffled = video[:, torch.tensor([3, 1, 7, 0, 5, 2, 6, 4])]
    with torch.no_grad():
        ordered = model.encode_video(video)
        assert not torch.allclose(ordered, model.encode_video(shuffled), atol=1e-4)
        model.vision_encoder.temporal_positional_embedding.zero_()
        a, b = model.encode_video(video), model.encode_video(shuffled)
    hook.remove()
    assert seen[0] == (1, 1 + 8 * 4, 32)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(model.encode_video(video), model.encode_video(video))  # deterministic


def test_a_single_frame_uses_the_mean_temporal_embedding():
    """Upstream's image path: T = 1 adds ``temporal_positional_embedding.mean(1)``."""
    model = random_tiny()
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    key = "vision_encoder.temporal_positional_embedding"
    frame = torch.randn(1, 1, 3, 28, 28)
    with torch.no_grad():
        got = model.vision_encoder(frame.permute(0, 2, 1, 3, 4))
        with pytest.raises(ValueError, match="takes 8 frames"):
            model.vision_encoder(torch.randn(1, 3, 4, 28, 28))
    expected = reference_video({**sd, key: sd[key].mean(1, keepdim=True)}, frame, model.config)
    assert torch.allclose(got, expected, atol=1e-4)
    first_only = reference_video(sd, frame, model.config)  # frame 0's embedding is not used
    assert not torch.allclose(got, first_only, atol=1e-3)


def test_text_tower_pools_at_eot_under_a_causal_mask():
    model = random_tiny()
    tok = ViCLIPTokenizer(32)
    ids = tok(["a red square moves", "a dog"])
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    t = "text_encoder."
    x = sd[t + "token_embedding.weight"][ids] + sd[t + "positional_embedding"]
    mask = torch.full((32, 32), float("-inf")).triu(1)
    x = reference_blocks(x, sd, t + "transformer", 2, 2, mask)
    x = F.layer_norm(x, (32,), sd[t + "ln_final.weight"], sd[t + "ln_final.bias"])
    expected = x[torch.arange(2), ids.argmax(-1)] @ sd[t + "text_projection"]
    with torch.no_grad():
        got = model.encode_text(ids)
        tail = ids.clone()
        tail[0, 10:] = 1000  # tokens after EOT (padding) cannot reach the EOT position
        assert torch.allclose(model.encode_text(tail)[0], got[0], atol=1e-5)
    assert torch.allclose(got, expected, atol=1e-4)
    assert model.logit_scale.item() == pytest.approx(100.0)


# -- the tokenizer -------------------------------------------------------------------------
def test_tokenizer_is_clip_bpe_with_context_32():
    tok = ViCLIPTokenizer(32)
    ids = tok(["a photo of a dog", "A  Photo of a DOG"])
    assert ids.shape == (2, 32) and ids.dtype == torch.long
    # OpenAI CLIP ids: <|startoftext|> a photo of a dog <|endoftext|>, zero padding
    assert ids[0, :7].tolist() == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert ids[0, 7:].abs().sum() == 0 and torch.equal(ids[0], ids[1])  # lower-cased, spaces


def test_tokenizer_truncates_like_upstream():
    tok = ViCLIPTokenizer(32)
    long = tok(["word " * 40])[0].tolist()
    assert len(long) == 32 and long[0] == 49406 and long[-1] == 49407
    assert long[1:31] == [tok.encode("word")[0]] * 30  # first 31 tokens kept, last -> EOT
    exact = tok(["word " * 30])[0].tolist()  # 30 words + SOT + EOT = 32: nothing cut
    assert exact[-1] == 49407 and exact[-2] == exact[1]


def test_tokenizer_treats_upstream_special_strings_as_special():
    """Upstream's regex matches ``<|endoftext|>`` inside a text as the special token."""
    tok = ViCLIPTokenizer(32)
    ids = tok(["x <|endoftext|> y"])[0].tolist()
    assert ids[:5] == [49406, tok.encode("x")[0], 49407, tok.encode("y")[0], 49407]
    assert 49406 not in tok(["<start_of_text>"])[0].tolist()[1:]  # open_clip's spelling is text
