"""textme-clap: CLAP (HTSAT audio + RoBERTa text) as a textme-sdk audio encoder.

Registers the encoder ``clap`` (modality ``audio``) with two backends behind it:
transformers' ``ClapModel`` (default, ``laion/larger_clap_general``) and the
``laion_clap`` package with the original checkpoints. Nothing heavy is imported here:
transformers / laion_clap load only when weights are loaded.

Example::

    from textme_sdk import get_encoder

    enc = get_encoder("clap")                                  # laion/larger_clap_general
    enc = get_encoder("clap", model="laion/larger_clap_music_and_speech")
    enc = get_encoder("clap", model="630k-audioset-best.pt")  # laion_clap backend
    enc.encode_modal(["dog.wav", (waveform, 16000)])          # [2, 512]
"""

from __future__ import annotations

from textme_sdk import hookimpl

from .common import CheckpointError, CLAPLoadError, TokenizerError
from .encoder import DEFAULT_BACKEND, DEFAULT_MODEL, CLAPEncoder

__all__ = ["CLAPEncoder", "CLAPLoadError", "CheckpointError", "TokenizerError",
           "DEFAULT_MODEL", "DEFAULT_BACKEND"]
__version__ = "0.1.0"


@hookimpl
def register_encoders(register) -> None:
    """Register the ``clap`` audio encoder."""
    register(
        "clap",
        CLAPEncoder,
        modality="audio",
        description="LAION CLAP audio/text encoder (transformers ClapModel or laion_clap "
        "checkpoints)",
        license=CLAPEncoder.license,
        default_model=DEFAULT_MODEL,
        extra="audio",
    )
