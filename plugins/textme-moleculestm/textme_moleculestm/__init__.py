"""textme-moleculestm: MoleculeSTM-Graph (GIN molecule branch + fine-tuned SciBERT text branch)
as a textme-sdk molecule encoder.

Registers the encoder ``moleculestm`` (modality ``molecule``, 256-d). Nothing heavy is imported
here: transformers and RDKit load only when the encoder is used.

Licence: MoleculeSTM's code and checkpoints are under the NVIDIA Source Code License for
MoleculeSTM (non-commercial use only: research or evaluation).

Example::

    from textme_sdk import get_encoder

    enc = get_encoder("moleculestm")  # chao1224/MoleculeSTM, pretrained SciBERT-Graph run
    enc = get_encoder("moleculestm", subfolder="demo")  # upstream's toy demo checkpoints
    enc = get_encoder("moleculestm", model="/path/to/checkpoint_folder", on_invalid="skip")
    enc.encode_modal(["CCO", "c1ccccc1C(=O)O", "molecule.sdf"])
"""

from __future__ import annotations

from textme_sdk import hookimpl

from .checkpoints import (
    DEFAULT_SUBFOLDER,
    DEMO_SUBFOLDER,
    HUB_REPO,
    NAMED_SUBFOLDERS,
    CheckpointError,
    MoleculeSTMLoadError,
)
from .encoder import LICENSE, MoleculeSTMEncoder, embed_molecules
from .molecules import InvalidMoleculeError, ParsedMolecules, parse_molecules, read_sdf

__all__ = [
    "DEFAULT_SUBFOLDER",
    "DEMO_SUBFOLDER",
    "HUB_REPO",
    "NAMED_SUBFOLDERS",
    "LICENSE",
    "CheckpointError",
    "InvalidMoleculeError",
    "MoleculeSTMEncoder",
    "MoleculeSTMLoadError",
    "ParsedMolecules",
    "embed_molecules",
    "parse_molecules",
    "read_sdf",
]
__version__ = "0.1.0"


@hookimpl
def register_encoders(register) -> None:
    """Register the ``moleculestm`` molecule encoder."""
    register(
        "moleculestm",
        MoleculeSTMEncoder,
        modality="molecule",
        description="MoleculeSTM-Graph: GIN on OGB molecular graphs + fine-tuned SciBERT, 256-d",
        license=LICENSE,
        default_model=f"{HUB_REPO}/{DEFAULT_SUBFOLDER}",
        extra="molecule",
    )
