"""Typed errors. Every message names the problem and the fix."""

from __future__ import annotations

__all__ = [
    "TextMEError",
    "UnknownPluginError",
    "UnknownModalityError",
    "PluginLoadError",
    "IncompletePluginError",
    "EncoderLoadError",
    "CheckpointError",
    "TokenizerError",
    "EncoderError",
    "DimensionMismatchError",
    "InvalidEmbeddingError",
    "EmptyInputError",
    "InvalidInputError",
    "MissingInputFileError",
    "PluginExistsError",
    "BundleError",
    "BundleFormatError",
    "BundleVersionError",
    "BundleIntegrityError",
    "MissingFileError",
    "TrainingInterrupted",
    "TrainingDivergedError",
    "TrainingCheckpointError",
    "OutputExistsError",
    "BundleWriteError",
    "NonFiniteWeightsError",
    "HeadMismatchError",
    "AnchorMismatchError",
]


class TextMEError(Exception):
    """Base class of every error raised by textme-sdk."""


class UnknownPluginError(TextMEError, KeyError):
    """An encoder or anchor name that no installed plugin registers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownModalityError(TextMEError, KeyError):
    """A modality that a bundle does not contain."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PluginLoadError(TextMEError):
    """A plugin failed to import, register, build or load a model."""


class IncompletePluginError(PluginLoadError, TypeError):
    """An encoder or anchor class implements neither the batch methods nor the public ones."""


class EncoderLoadError(PluginLoadError):
    """An encoder's or anchor's weights could not be loaded (base of the plugins' load errors)."""


class CheckpointError(EncoderLoadError):
    """A checkpoint file is missing, damaged, or does not fit the architecture."""


class TokenizerError(EncoderLoadError):
    """A tokenizer is missing or would give silently wrong embeddings (e.g. an offline stub)."""


class EncoderError(TextMEError):
    """A plugin's code failed while encoding; names the model and the input positions."""


class DimensionMismatchError(TextMEError, ValueError):
    """Shapes of encoder, projector, offsets and anchor do not agree."""


class InvalidEmbeddingError(TextMEError, ValueError):
    """An encoder or anchor produced NaN/inf values or a wrong shape."""


class EmptyInputError(TextMEError, ValueError):
    """An operation was given no inputs."""


class InvalidInputError(TextMEError, ValueError):
    """An input has the wrong type or content."""


class MissingInputFileError(InvalidInputError, FileNotFoundError):
    """An input names a file that does not exist (or is not a regular file)."""


class PluginExistsError(InvalidInputError, FileExistsError):
    """``textme add-modality``'s target folder already exists (``force=True`` rewrites its files)."""


class BundleError(TextMEError):
    """Base class of problems with a saved bundle."""


class BundleFormatError(BundleError, ValueError):
    """A bundle's config or weights are malformed."""


class BundleVersionError(BundleError):
    """A bundle was written by a newer format than this library reads."""


class BundleIntegrityError(BundleError):
    """A bundle file is truncated, tampered with, or does not match its recorded hash."""


class MissingFileError(BundleError, FileNotFoundError):
    """A file a bundle needs is not there."""


class TrainingInterrupted(TextMEError):
    """Training stopped on SIGINT/SIGTERM after saving a resumable checkpoint."""

    def __init__(self, message: str, checkpoint_dir: str | None = None, step: int = 0):
        super().__init__(message)
        self.checkpoint_dir = checkpoint_dir
        self.step = step


class TrainingDivergedError(TextMEError, FloatingPointError):
    """The training loss or the projector weights became NaN/inf; nothing was saved."""


class TrainingCheckpointError(TextMEError, ValueError):
    """A training checkpoint is damaged, or belongs to another config or other data."""


class OutputExistsError(BundleError, FileExistsError):
    """``save_pretrained``'s target exists and is not a textme bundle: it is never replaced."""


class BundleWriteError(BundleError, OSError):
    """Writing a bundle failed (disk full, no permission); the previous bundle is unchanged."""


class NonFiniteWeightsError(BundleFormatError):
    """A projector or offsets hold NaN/inf values: they are neither saved, loaded nor used."""


class HeadMismatchError(TextMEError, ValueError):
    """A classifier head is used with another bundle, space or modality than it was fitted on."""


class AnchorMismatchError(TextMEError, ValueError):
    """Two models that must share one anchor space (e.g. a bridge and the modality it trains) do not."""
