"""Errors of the uni3d plugin: subclasses of textme-sdk's ``EncoderLoadError`` (and of its
``CheckpointError``); textme-sdk's typed errors cover bad inputs."""

from __future__ import annotations

from textme_sdk import errors

__all__ = ["CheckpointError", "Uni3DLoadError"]


class Uni3DLoadError(errors.EncoderLoadError):
    """A Uni3D model, its CLIP text tower or their weights could not be loaded."""


class CheckpointError(Uni3DLoadError, errors.CheckpointError):
    """A checkpoint file is unreadable, unsafe to read, or does not match the architecture."""
