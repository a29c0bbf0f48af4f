"""Base classes for the two kinds of models textme-sdk bridges.

* :class:`ModalityEncoder` - a contrastive encoder with a text branch and a modal branch
  (CLIP, CLAP, ...). A plugin implements three methods: :meth:`~ModalityEncoder.load_model`,
  :meth:`~ModalityEncoder.encode_text_batch` and :meth:`~ModalityEncoder.encode_modal_batch`;
  batching, ordering, validation and L2 normalisation are built once here.
* :class:`AnchorModel` - a text-embedding model that defines the shared space
  (Qwen3-Embedding, any sentence-transformers model, MiniLM offline). A plugin implements
  :meth:`~AnchorModel.load_model` and :meth:`~AnchorModel.encode_batch`.

Weights load lazily: constructing an encoder is cheap, and the first ``encode_*`` call (or an
explicit :meth:`load`) loads it.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .engine.progress import auto_progress
from .errors import (
    EmptyInputError,
    InvalidEmbeddingError,
    InvalidInputError,
    MissingInputFileError,
    TextMEError,
)

__all__ = ["ModalityEncoder", "AnchorModel", "InputSpec", "check_input_file", "check_tokenizer",
           "resolve_device", "Role"]

Role = Literal["document", "query"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` means CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class InputSpec:
    """What :meth:`ModalityEncoder.encode_modal` accepts, for docs, errors and the CLI.

    Attributes:
        kind: short name of the input kind (``"image"``, ``"audio"``, ``"tensor"`` ...).
        description: one sentence naming the accepted Python types and their layout.
        file_extensions: suffixes of files the encoder reads from disk (used by the CLI to
            collect inputs from a folder); empty when inputs are not files.
    """

    kind: str
    description: str
    file_extensions: tuple[str, ...] = ()


def check_input_file(path: str, kind: str, example_glob: str) -> None:
    """Raise a typed error unless ``path`` is an existing regular file (for plugins' readers).

    Args:
        path: the input path.
        kind: what the file should be, for the message (``"image"``, ``"audio"``).
        example_glob: a pattern to suggest when a folder is passed (``"*.jpg"``).

    Raises:
        InvalidInputError: ``path`` is a folder.
        MissingInputFileError: nothing (or no regular file) is at ``path``.
    """
    if os.path.isdir(path):
        raise InvalidInputError(
            f"{path!r} is a folder, not an {kind} file; pass the {kind} files inside it "
            f"(e.g. sorted(Path(folder).glob({example_glob!r})))"
        )
    if not os.path.isfile(path):
        raise MissingInputFileError(
            f"{kind} file not found: {path!r}; check the path (relative paths are resolved "
            f"against the working directory {os.getcwd()!r})"
        )


def check_tokenizer(
    tokenizer: Any,
    vocab_rows: int,
    what: str,
    probe: str,
    error: type[Exception] = TextMEError,
    expected: str = "the model's tokenizer",
    mismatch_hint: str = "",
) -> None:
    """Refuse a Hugging Face tokenizer that would give silently wrong embeddings (for plugins).

    Offline, transformers 5 can return a few-token stub tokenizer for a Hub name it cannot
    reach, which maps every word to the unknown token; token ids beyond the text model's
    embedding table would index out of range.

    Args:
        tokenizer: the loaded tokenizer.
        vocab_rows: rows of the text model's token-embedding table.
        what: how the tokenizer is named in messages (e.g. ``"'bert-base'"`` or ``"for clap"``).
        probe: an ordinary sentence of the domain, which must not be all unknown tokens.
        error: the exception type to raise (a plugin's own tokenizer error).
        expected: what the right tokenizer is called in the message.
        mismatch_hint: appended to the message when the vocabulary is too large.

    Raises:
        error: a vocabulary under 16 tokens, more tokens than embedding rows, or a probe
            sentence of unknown tokens only.
    """
    size = len(tokenizer)
    if size < 16:
        raise error(
            f"the tokenizer {what} has only {size} tokens: its vocabulary files were not found "
            "(offline?). Download it once with network access or pass tokenizer=<folder>"
        )
    if size > vocab_rows:
        raise error(
            f"the tokenizer {what} has {size} tokens but the text model embeds only "
            f"{vocab_rows}; they do not belong together{mismatch_hint}"
        )
    ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    if not ids or all(i == unk for i in ids):
        raise error(
            f"the tokenizer {what} maps ordinary English to unknown tokens only: it is not "
            f"{expected} (a stub created offline?)"
        )


def _check_list(inputs: Any, what: str) -> list:
    if isinstance(inputs, (str, bytes)):
        raise InvalidInputError(
            f"{what} expects a list of inputs, got a single {type(inputs).__name__}; "
            f"wrap it in a list: [{inputs!r:.40}]"
        )
    try:
        items = list(inputs)
    except TypeError as exc:
        raise InvalidInputError(
            f"{what} expects a list of inputs, got {type(inputs).__name__}"
        ) from exc
    if not items:
        raise EmptyInputError(f"{what} was given no inputs; pass at least one")
    return items


def _check_texts(texts: Any, what: str) -> list[str]:
    items = _check_list(texts, what)
    bad = [i for i, t in enumerate(items) if not isinstance(t, str)]
    if bad:
        raise InvalidInputError(
            f"{what} expects strings; item {bad[0]} is a {type(items[bad[0]]).__name__}"
        )
    return items


def _finish(out: Any, n: int, dim: int, who: str) -> torch.Tensor:
    """Validate a batch of raw embeddings and return them L2-normalised, float32, on CPU."""
    if not isinstance(out, torch.Tensor):
        raise InvalidEmbeddingError(f"{who} returned {type(out).__name__}, expected a torch.Tensor")
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] != dim:
        raise InvalidEmbeddingError(
            f"{who} returned shape {tuple(out.shape)}, expected ({n}, {dim}); check the "
            "encoder's embedding_dim and that it returns one row per input"
        )
    out = out.detach().float()
    if not torch.isfinite(out).all():
        rows = (~torch.isfinite(out)).any(dim=1).nonzero().flatten().tolist()
        raise InvalidEmbeddingError(
            f"{who} produced NaN/inf embeddings for {len(rows)} of {n} inputs (first: {rows[:5]}); "
            "try float32 instead of float16, or check the inputs at those positions"
        )
    norms = out.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise InvalidEmbeddingError(f"{who} produced an all-zero embedding; it cannot be normalised")
    return (out / norms).cpu()


def _batched(
    items: list,
    batch_size: int,
    fn: Callable[[list], torch.Tensor],
    dim: int,
    who: str,
    show_progress_bar: bool | None,
    sort_key: Callable[[Any], int] | None = None,
) -> torch.Tensor:
    """Run ``fn`` over batches (length-sorted when ``sort_key`` is given), in input order."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(items)))
    if sort_key is not None:
        order.sort(key=lambda i: -sort_key(items[i]))
    n_batches = math.ceil(len(items) / batch_size)
    show_progress_bar = auto_progress(show_progress_bar, n_batches > 8)
    out = torch.empty(len(items), dim)
    from tqdm.auto import tqdm

    with torch.inference_mode():
        for b in tqdm(range(n_batches), desc=who, disable=not show_progress_bar, leave=False):
            idx = order[b * batch_size : (b + 1) * batch_size]
            emb = _finish(fn([items[i] for i in idx]), len(idx), dim, who)
            out[idx] = emb
    return out


class _Lazy(ABC):
    """Shared lazy-loading state of encoders and anchors."""

    def __init__(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        self._device_request = device
        self._dtype = dtype
        self._loaded_on: torch.device | None = None

    @property
    def device(self) -> torch.device:
        """The device the weights live on (resolved on first load)."""
        return self._loaded_on or resolve_device(self._device_request)

    @property
    def is_loaded(self) -> bool:
        return self._loaded_on is not None

    def prefer_device(self, device: str | torch.device | None) -> None:
        """Use ``device`` for the first load unless a device was requested explicitly."""
        if self._device_request is None and not self.is_loaded:
            self._device_request = device

    def load(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """Load the weights onto ``device`` (default: CUDA when available); returns ``self``.

        Called automatically by the first ``encode`` call. Loading again on the same device is
        a no-op; a different device moves the model.
        """
        target = resolve_device(device if device is not None else self._device_request)
        if dtype is not None:
            self._dtype = dtype
        if self._loaded_on != target:
            self.load_model(target, self._dtype)
            self._loaded_on = target
        return self

    @abstractmethod
    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Load (or move) the weights onto ``device``. Implemented by plugins."""

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model through its registered factory.

        Must be JSON-serialisable and identify the weights exactly (model id, revision...):
        bundles store it, and the embedding cache keys on it.
        """
        return {}


class ModalityEncoder(_Lazy, ABC):
    """A contrastive encoder with a text branch and a modal branch.

    Subclasses set ``name``, ``modality``, ``embedding_dim`` and ``input_spec`` and implement
    :meth:`load_model`, :meth:`encode_text_batch` and :meth:`encode_modal_batch`; they may
    override :meth:`preprocess` and :meth:`config`.

    Example:
        >>> from textme_sdk import get_encoder
        >>> enc = get_encoder("ref-image")          # doctest: +SKIP
        >>> enc.encode_text(["a red dog"]).shape    # doctest: +SKIP
        torch.Size([1, 64])
    """

    name: str = "encoder"
    modality: str = "modal"
    embedding_dim: int = 0
    input_spec: InputSpec = InputSpec("any", "a list of model-specific inputs")
    license: str | None = None

    # -- what plugins implement -------------------------------------------------------------
    @abstractmethod
    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Embed one batch of texts with the text branch: ``[len(texts), embedding_dim]``.

        Runs under ``torch.inference_mode``; need not normalise.
        """

    @abstractmethod
    def encode_modal_batch(self, batch: Any) -> torch.Tensor:
        """Embed one preprocessed batch with the modal branch: ``[batch_size, embedding_dim]``."""

    def preprocess(self, inputs: list[Any]) -> Any:
        """Turn a list of raw inputs (paths, arrays, ...) into what ``encode_modal_batch`` takes.

        The default passes the list through unchanged.
        """
        return inputs

    def text_length(self, text: str) -> int:
        """Sort key for length-bucketed text batches (default: characters)."""
        return len(text)

    # -- what users call --------------------------------------------------------------------
    def encode_text(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool | None = None
    ) -> torch.Tensor:
        """Embed texts with the text branch; L2-normalised float32 ``[N, embedding_dim]`` on CPU."""
        items = _check_texts(texts, f"{self.name}.encode_text")
        self.load()
        return _batched(
            items, batch_size, self.encode_text_batch, self.embedding_dim,
            f"{self.name} text", show_progress_bar, sort_key=self.text_length,
        )

    def encode_modal(
        self, inputs: Sequence[Any], batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> torch.Tensor:
        """Embed modal inputs (see ``input_spec``); L2-normalised float32 ``[N, d]`` on CPU."""
        items = _check_list(inputs, f"{self.name}.encode_modal")
        self.load()
        return _batched(
            items, batch_size, lambda chunk: self.encode_modal_batch(self.preprocess(chunk)),
            self.embedding_dim, f"{self.name} {self.modality}", show_progress_bar,
        )

    def info(self) -> dict[str, Any]:
        """Name, modality, dimension, input kind and licence, for listings."""
        return {
            "name": self.name,
            "modality": self.modality,
            "embedding_dim": self.embedding_dim,
            "input": self.input_spec.kind,
            "license": self.license,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, modality={self.modality!r}, "
            f"dim={self.embedding_dim}, loaded={self.is_loaded})"
        )


class AnchorModel(_Lazy, ABC):
    """A text-embedding model that defines the shared anchor space.

    Subclasses set ``name`` and ``embedding_dim`` and implement :meth:`load_model` and
    :meth:`encode_batch`. ``role`` distinguishes queries (which some models prefix with an
    instruction) from documents.
    """

    name: str = "anchor"
    embedding_dim: int = 0
    license: str | None = None

    @abstractmethod
    def encode_batch(self, texts: list[str], role: Role) -> torch.Tensor:
        """Embed one batch of texts: ``[len(texts), embedding_dim]``; need not normalise."""

    def encode(
        self,
        texts: Sequence[str],
        role: Role = "document",
        batch_size: int = 64,
        show_progress_bar: bool | None = None,
    ) -> torch.Tensor:
        """Embed texts; L2-normalised float32 ``[N, embedding_dim]`` on CPU."""
        if role not in ("document", "query"):
            raise InvalidInputError(f"role must be 'document' or 'query', got {role!r}")
        items = _check_texts(texts, f"{self.name}.encode")
        self.load()
        return _batched(
            items, batch_size, lambda chunk: self.encode_batch(chunk, role), self.embedding_dim,
            f"{self.name} anchor", show_progress_bar, sort_key=len,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.embedding_dim})"
