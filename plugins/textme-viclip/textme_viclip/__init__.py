"""textme-viclip: InternVid's ViCLIP as a textme-sdk video encoder.

Registers the encoder ``viclip`` (modality ``video``). Nothing heavy is imported here: the
model code, PyAV and open_clip's tokenizer load only when the encoder is used.

Example::

    from textme_sdk import get_encoder

    enc = get_encoder("viclip")              # ViCLIP-L/14, ViClip-InternVid-10M-FLT.pth, 768-d
    enc = get_encoder("viclip", model="ViCLIP-B-16",
                      checkpoint="/models/ViCLIP-B_InternVid-FLT-10M.pth")   # 512-d
    enc.encode_modal(["clip.mp4", frames_uint8_THWC])   # [2, 768], L2-normalised
"""

from __future__ import annotations

from textme_sdk import hookimpl

from .encoder import DEFAULT_MODEL, LICENSE, ViCLIPEncoder
from .weights import ViCLIPLoadError

__all__ = ["DEFAULT_MODEL", "ViCLIPEncoder", "ViCLIPLoadError"]
__version__ = "0.1.0"


@hookimpl
def register_encoders(register) -> None:
    """Register the ``viclip`` video encoder."""
    register(
        "viclip",
        ViCLIPEncoder,
        modality="video",
        description="InternVid ViCLIP video/text encoder (ViCLIP-L/14 768-d, ViCLIP-B/16 512-d)",
        license=LICENSE,
        default_model=DEFAULT_MODEL,
        extra="video",
    )
