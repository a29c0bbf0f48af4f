"""Errors of the uni3d plugin (textme-sdk's typed errors cover bad inputs)."""

from __future__ import annotations

from textme_sdk.errors import TextMEError

__all__ = ["CheckpointError", "Uni3DLoadError"]


class Uni3DLoadError(TextMEError):
    """A Uni3D model, its CLIP text tower or their weights could not be loaded."""


class CheckpointError(Uni3DLoadError):
    """A checkpoint file is unreadable, unsafe to read, or does not match the architecture."""
