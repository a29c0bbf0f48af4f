"""Tiny configurations shared by the uni3d tests (a uniquely named module, so that test
suites of several plugins can run in one pytest session)."""

from __future__ import annotations

TINY_CLIP = "uni3d-test-tiny-clip"
TINY_CLIP_ROOT = "uni3d-test-tiny-clip-root"  # the same, classic CLIP (root text keys)
TINY_CLIP_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    # vocab_size must stay 49408: the default open_clip tokenizer emits ids up to 49407.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    "custom_text": True,  # as EVA02-E-14-plus: text weights under ``text.``
}
#: A tiny Uni3D: the EVA02-tiny block type (fused qkv, packed SwiGLU) at width 32, 2 blocks.
TINY_ARCH = {
    "pc_feat_dim": 32, "embed_dim": 32, "num_group": 16, "group_size": 8, "npoints": 256,
    "timm_kwargs": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 28, "num_classes": 0},
}
