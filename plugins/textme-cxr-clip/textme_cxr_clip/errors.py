"""Errors of the ``cxr_clip`` plugin; subclasses of textme-sdk's ``EncoderLoadError`` (and of its
``CheckpointError`` / ``TokenizerError`` where they match)."""

from __future__ import annotations

from textme_sdk import errors

__all__ = [
    "ArchitectureError",
    "CXRClipLoadError",
    "CheckpointError",
    "CheckpointMismatchError",
    "TokenizerError",
]


class CXRClipLoadError(errors.EncoderLoadError):
    """A CXR-CLIP model, its weights or its tokenizer could not be loaded."""


class CheckpointError(CXRClipLoadError, errors.CheckpointError):
    """A checkpoint cannot be read safely, converted, found or downloaded."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A state dict does not fit the architecture (missing, unexpected or mis-shaped tensors)."""


class ArchitectureError(CXRClipLoadError, ValueError):
    """A CXR-CLIP architecture description is invalid or does not match a checkpoint."""


class TokenizerError(CXRClipLoadError, errors.TokenizerError):
    """The text tokenizer is missing, silently useless, or does not fit the text encoder."""
