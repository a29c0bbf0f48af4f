"""textme-cxr-clip: CXR-CLIP (kakaobrain/cxr-clip) as a textme-sdk chest X-ray encoder.

Registers the encoder ``cxr_clip`` (modality ``xray``). Nothing heavy is imported here:
torch models, transformers and torchvision load only when the encoder's weights are loaded.

Example::

    from textme_sdk import get_encoder

    enc = get_encoder("cxr_clip")                          # swint_mcc, 512-d
    enc = get_encoder("cxr_clip", model="r50_mcc")
    enc = get_encoder("cxr_clip", checkpoint="/data/swint_mcc.tar")  # converted once, safely
    enc.encode_modal(["cxr.png", "study.dcm"])             # [2, 512]
    enc.encode_text(["no acute cardiopulmonary process"])  # [1, 512]

The upstream code and weights are licensed CC BY-NC-SA 4.0 (LICENSE file; the README says
CC BY-NC 4.0): non-commercial use only.
"""

from __future__ import annotations

from textme_sdk import hookimpl

from .encoder import DEFAULT_MODEL, LICENSE, CXRClipEncoder
from .errors import (
    ArchitectureError,
    CheckpointError,
    CheckpointMismatchError,
    CXRClipLoadError,
    TokenizerError,
)

__all__ = [
    "DEFAULT_MODEL",
    "LICENSE",
    "ArchitectureError",
    "CXRClipEncoder",
    "CXRClipLoadError",
    "CheckpointError",
    "CheckpointMismatchError",
    "TokenizerError",
    "convert_checkpoint",
]
__version__ = "0.1.0"


def convert_checkpoint(src, dst=None, inert_names=(), **overrides):
    """Convert a kakaobrain/cxr-clip ``.tar`` checkpoint to ``.safetensors`` (no code executed).

    See :func:`textme_cxr_clip.checkpoint.convert_checkpoint`.
    """
    from .checkpoint import convert_checkpoint as convert

    return convert(src, dst, inert_names, **overrides)


@hookimpl
def register_encoders(register) -> None:
    """Register the ``cxr_clip`` chest X-ray encoder."""
    register(
        "cxr_clip",
        CXRClipEncoder,
        modality="xray",
        description="CXR-CLIP chest X-ray/report encoder (Swin-T or ResNet-50 + BioClinicalBERT, "
        "512-d; checkpoints r50_m/mc/mcc, swint_m/mc/mcc)",
        license=LICENSE,
        default_model=DEFAULT_MODEL,
        extra="xray",
    )
