"""textme-uni3d: Uni3D (BAAI) as a textme-sdk 3D point-cloud encoder.

Registers the encoder ``uni3d`` (modality ``3d``): Uni3D's point encoder (FPS + kNN patches,
a mini-PointNet, timm EVA blocks) for point clouds and meshes, and the text tower of open_clip
``EVA02-E-14-plus`` / ``laion2b_s9b_b144k`` for text, both 1024-d. Nothing heavy is imported
here: timm, open_clip and trimesh load only when they are needed.

Example::

    from textme_sdk import get_encoder

    enc = get_encoder("uni3d")                      # uni3d-g from BAAI/Uni3D
    enc = get_encoder("uni3d", model="uni3d-b")
    enc = get_encoder("uni3d", model="base", checkpoint="/path/to/model.pt")
    enc.encode_modal(["chair.ply", "mug.obj", xyz_rgb_array])   # [3, 1024]
"""

from __future__ import annotations

from textme_sdk import hookimpl

from .arch import DEFAULT_MODEL, RELEASED, SIZES, Uni3DArch
from .encoder import Uni3DEncoder
from .errors import CheckpointError, Uni3DLoadError

__all__ = [
    "DEFAULT_MODEL",
    "RELEASED",
    "SIZES",
    "CheckpointError",
    "Uni3DArch",
    "Uni3DEncoder",
    "Uni3DLoadError",
]
__version__ = "0.1.0"


@hookimpl
def register_encoders(register) -> None:
    """Register the ``uni3d`` 3D encoder."""
    register(
        "uni3d",
        Uni3DEncoder,
        modality="3d",
        description="Uni3D point-cloud encoder (BAAI, EVA ViT on point patches) with the "
        "EVA02-E-14-plus CLIP text tower",
        license=Uni3DEncoder.license,
        default_model=DEFAULT_MODEL,
        extra="3d",
    )
