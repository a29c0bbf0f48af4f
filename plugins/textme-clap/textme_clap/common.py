"""Pieces both CLAP backends share: errors, the tokenizer guard, and the backend interface."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from textme_sdk import errors
from textme_sdk.encoders import check_tokenizer as _check

from .audio import MelParams

__all__ = ["CLAPLoadError", "CheckpointError", "TokenizerError", "Backend", "check_tokenizer",
           "load_tokenizer", "TEXT_MAX_TOKENS"]

#: LAION-CLAP trained its text branch on 77 tokens (``CLAP_Module.tokenizer``).
TEXT_MAX_TOKENS = 77
_PROBE = "a dog barks while rain falls on a metal roof"


class CLAPLoadError(errors.EncoderLoadError):
    """A CLAP model, tokenizer or feature extractor could not be loaded."""


class CheckpointError(CLAPLoadError, errors.CheckpointError):
    """A checkpoint file is unreadable or does not match the architecture."""


class TokenizerError(CLAPLoadError, errors.TokenizerError):
    """The text tokenizer is missing or silently useless."""


class Backend(Protocol):
    """What :class:`textme_clap.CLAPEncoder` needs from a loaded CLAP implementation."""

    model: torch.nn.Module
    fusion: bool
    quantize: bool
    mel: MelParams
    embedding_dim: int

    def to(self, device: torch.device) -> None: ...

    def embed_text(self, texts: list[str]) -> torch.Tensor: ...

    def embed_audio(self, clips: list[np.ndarray]) -> torch.Tensor: ...


def load_tokenizer(name_or_path: str, revision: str | None = None,
                   cache_dir: str | None = None) -> Any:
    """``AutoTokenizer.from_pretrained`` with a clear error instead of a traceback."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path, revision=revision, cache_dir=cache_dir)
    except (OSError, ValueError) as exc:
        raise TokenizerError(
            f"could not load the tokenizer {name_or_path!r} ({exc}). When offline it must "
            "already be in the Hugging Face cache; or pass tokenizer=<local folder or object>"
        ) from exc


def check_tokenizer(tokenizer: Any, vocab_rows: int, what: str) -> None:
    """Refuse tokenizers that would give silently wrong embeddings.

    transformers 5 returns a 5-token ``RobertaTokenizer`` for ``from_pretrained('roberta-base')``
    offline: every word becomes ``<unk>``. Token ids beyond the embedding table are refused too.

    Raises:
        TokenizerError: tiny vocabulary, a probe sentence that is all unknown tokens, or a
            vocabulary larger than the text model's embedding table.
    """
    _check(tokenizer, vocab_rows, f"for {what}", _PROBE, error=TokenizerError)
