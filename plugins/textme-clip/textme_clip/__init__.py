"""textme-clip: any open_clip model as a textme-sdk image encoder.

Registers the encoder ``clip`` (modality ``image``). Nothing heavy is imported here:
open_clip loads only when the encoder's weights are loaded.

Example::

    from textme_sdk import get_encoder

    enc = get_encoder("clip")                       # ViT-H-14 / laion2b_s32b_b79k, 1024-d
    enc = get_encoder("clip", model="ViT-B-32:laion2b_s34b_b79k")
    enc = get_encoder("clip", model="hf-hub:laion/CLIP-ViT-g-14-laion2B-s12B-b42K")
    enc = get_encoder("clip", model="ViT-B-32", pretrained="/path/to/checkpoint.pt")
"""

from __future__ import annotations

from textme_sdk import hookimpl

from .encoder import DEFAULT_MODEL, CLIPEncoder, CLIPLoadError, ModelSpec, parse_model_spec

__all__ = ["CLIPEncoder", "CLIPLoadError", "ModelSpec", "parse_model_spec", "DEFAULT_MODEL"]
__version__ = "0.1.0"


@hookimpl
def register_encoders(register) -> None:
    """Register the ``clip`` image encoder."""
    register(
        "clip",
        CLIPEncoder,
        modality="image",
        description="open_clip image/text encoder (any arch:tag, hf-hub: id or checkpoint file)",
        license=CLIPEncoder.license,
        default_model=DEFAULT_MODEL,
        extra="image",
    )
