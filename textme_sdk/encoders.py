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

import inspect
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from .engine.numerics import nonfinite_rows
from .engine.progress import auto_progress
from .errors import (
    EmptyInputError,
    EncoderError,
    EncoderLoadError,
    IncompletePluginError,
    InvalidEmbeddingError,
    InvalidInputError,
    MissingInputFileError,
    TextMEError,
)

__all__ = ["ModalityEncoder", "AnchorModel", "InputSpec", "check_input_file", "check_tokenizer",
           "resolve_device", "default_dtype", "absolute_path", "overrides_batching", "Role",
           "SkippedInputs"]

logger = logging.getLogger(__name__)

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
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    if os.path.isdir(path):
        raise InvalidInputError(
            f"{path!r} is a folder, not {article} {kind} file; pass the {kind} files inside it "
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
    rows = nonfinite_rows(out).tolist()
    if rows:
        raise InvalidEmbeddingError(
            f"{who} produced NaN/inf embeddings for {len(rows)} of {n} inputs (first: {rows[:5]}); "
            "try float32 instead of float16, or check the inputs at those positions"
        )
    norms = out.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise InvalidEmbeddingError(f"{who} produced an all-zero embedding; it cannot be normalised")
    return (out / norms).cpu()


def _positions(idx: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in sorted(idx)[:8])
    return f"{shown}{', ...' if len(idx) > 8 else ''}"


def _plugin_error(err: Exception, what: str, idx: Sequence[int]) -> TextMEError:
    """A plugin's own exception while encoding, as a typed error naming model and positions."""
    if isinstance(err, FileNotFoundError):
        return MissingInputFileError(f"{what}: an input file does not exist (positions "
                                     f"{_positions(idx)}): {err.filename or err}; check the path")
    return EncoderError(f"{what} failed on the inputs at positions {_positions(idx)} "
                        f"({type(err).__name__}: {err}); check those inputs")


def _batched(
    items: list,
    batch_size: int,
    fn: Callable[[list], torch.Tensor],
    dim: int,
    who: str,
    show_progress_bar: bool | None,
    sort_key: Callable[[Any], int] | None = None,
    owner: "_Lazy | None" = None,
) -> torch.Tensor:
    """Run ``fn`` over batches (length-sorted when ``sort_key`` is given), in input order.

    An exception that is not a :class:`TextMEError` raised by ``fn`` (the plugin's code) is
    re-raised as :class:`EncoderError` naming ``owner`` and the input positions of the batch.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
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
            try:
                raw = fn([items[i] for i in idx])
            except TextMEError:
                raise
            except Exception as err:
                raise _plugin_error(err, owner.describe() if owner else repr(who), idx) from err
            out[idx] = _finish(raw, len(idx), dim, who)
    return out


def _call_with_accepted(fn: Callable[..., Any], obj: Any, *args: Any) -> Any:
    """Call ``fn(obj, *args)`` with as many of ``args`` as ``fn`` accepts positionally."""
    try:
        params = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return fn(obj, *args)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return fn(obj, *args)
    n = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    return fn(obj, *args[:n])


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def absolute_path(value: Any) -> Any:
    """``value`` as an absolute path string when it names an existing local file or folder.

    For :meth:`ModalityEncoder.config` overrides: bundles store the config, so a relative path
    would only resolve from the directory the bundle was written in. Anything else (a Hub id,
    a published checkpoint name, ``None``) is returned unchanged.
    """
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return os.path.abspath(os.path.expanduser(os.fspath(value)))
    if isinstance(value, str):
        path = os.path.expanduser(value)
        return os.path.abspath(path) if value and os.path.exists(path) else value
    return value


def default_dtype(device: torch.device | str, dtype: torch.dtype | None = None) -> torch.dtype:
    """``dtype`` if given, else float16 on CUDA and float32 elsewhere (the encoders' default)."""
    if dtype is not None:
        return dtype
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def overrides_batching(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark an override of ``encode_text`` / ``encode_modal`` / ``encode`` as complete.

    By default a subclass that overrides one of these public methods is treated as having
    written the *batch* implementation in a natural style: the base class still validates the
    inputs, loads lazily, batches, checks and normalises the outputs. An override decorated
    with this handles all of that itself (usually by calling ``super()``), and is left as is.
    """
    fn._textme_complete = True  # type: ignore[attr-defined]
    return fn


class _Lazy:
    """Shared lazy-loading state of encoders and anchors, robust to a missing ``super().__init__()``.

    The state lives in class-level defaults that instances override, so a subclass whose
    ``__init__`` forgets to call ``super().__init__()`` still loads lazily on its first use.
    Constructor arguments are captured (as ``huggingface_hub``'s ``ModelHubMixin`` does) to
    give :meth:`config` a default.
    """

    _device_request: str | torch.device | None = None
    _dtype: torch.dtype | None = None
    _loaded_on: torch.device | None = None
    _init_args: dict[str, Any] = {}
    #: set by the plugin registry: the plugin that registered this model
    plugin: str | None = None
    #: constructor arguments never stored by the default :meth:`config`
    config_exclude: tuple[str, ...] = ("device", "dtype")

    # the public methods a subclass may override in the natural style -> their batch method
    _natural: ClassVar[dict[str, str]] = {}
    _required: ClassVar[tuple[tuple[str, str], ...]] = (("load_model", "load"),)

    def __init__(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        self._device_request = device
        self._dtype = dtype
        self._loaded_on = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        batch_of = {**cls._natural, "load": "load_model"}
        for public, batch in batch_of.items():
            fn = cls.__dict__.get(public)
            if fn is None or getattr(fn, "_textme_base", False) or getattr(
                    fn, "_textme_complete", False):
                continue
            if cls._own(batch):
                continue  # the class writes the batch method: its public override wraps it
            # a natural-style override: keep it as the implementation and put the base
            # method (validation, lazy loading, batching, normalisation) back in front of it
            setattr(cls, f"_natural_{public}", fn)
            for klass in cls.__mro__[1:]:
                inherited = klass.__dict__.get(public)
                if inherited is not None and (getattr(inherited, "_textme_base", False)
                                              or getattr(inherited, "_textme_complete", False)):
                    setattr(cls, public, inherited)
                    break

    def __new__(cls, *args: Any, **kwargs: Any):
        missing = [f"{impl} (or override {public})" for impl, public in cls._required
                   if not cls._implements(impl, public)]
        if missing:
            base = "ModalityEncoder" if issubclass(cls, ModalityEncoder) else "AnchorModel"
            raise IncompletePluginError(
                f"{cls.__qualname__} cannot be built: write " + "; ".join(missing)
                + f". A {base} subclass writes either the batch methods or the public ones "
                "(see docs/writing-a-plugin.md)"
            )
        obj = super().__new__(cls)
        obj._init_args = _capture_init_args(cls, args, kwargs)
        return obj

    @classmethod
    def _own(cls, impl: str) -> bool:
        """Whether ``impl`` is written by a plugin class rather than inherited from the base."""
        for klass in cls.__mro__:
            if klass in (ModalityEncoder, AnchorModel, _Lazy, object):
                return False
            if impl in klass.__dict__:
                return True
        return False

    @classmethod
    def _implements(cls, impl: str, public: str) -> bool:
        base = ModalityEncoder if issubclass(cls, ModalityEncoder) else (
            AnchorModel if issubclass(cls, AnchorModel) else _Lazy)
        own_impl = getattr(cls, impl) is not getattr(base, impl, None)
        return own_impl or hasattr(cls, f"_natural_{public}") or getattr(
            getattr(cls, public, None), "_textme_complete", False)

    # -- state --------------------------------------------------------------------------------
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

    def describe(self) -> str:
        """How messages name this model: kind, name, plugin (and modality for encoders)."""
        kind = "encoder" if isinstance(self, ModalityEncoder) else "anchor"
        extra = [f"plugin {self.plugin!r}"] if self.plugin else []
        modality = getattr(self, "modality", None)
        if kind == "encoder" and modality:
            extra.append(f"modality {modality!r}")
        name = getattr(self, "name", type(self).__name__)
        return f"{kind} {name!r}" + (f" ({', '.join(extra)})" if extra else "")

    def load(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """Load the weights onto ``device`` (default: CUDA when available); returns ``self``.

        Called automatically by the first ``encode`` call. Loading again on the same device is
        a no-op; a different device moves the model. Exceptions of the plugin's loading code
        arrive as :class:`EncoderLoadError` naming the model; a model whose loaded dimension
        differs from the ``embedding_dim`` it was asked for (e.g. by a bundle) is refused.
        """
        target = resolve_device(device if device is not None else self._device_request)
        if dtype is not None:
            self._dtype = dtype
        if self._loaded_on == target:
            return self
        natural = getattr(type(self), "_natural_load", None)
        try:
            if natural is not None:
                _call_with_accepted(natural, self, target, self._dtype)
            else:
                self.load_model(target, self._dtype)
        except TextMEError:
            raise
        except Exception as err:
            raise EncoderLoadError(
                f"{self.describe()} failed to load on {target} ({type(err).__name__}: {err})"
            ) from err
        self._check_loaded_dim()
        self._loaded_on = target
        return self

    load._textme_base = True  # type: ignore[attr-defined]

    def _check_loaded_dim(self) -> None:
        requested = self._init_args.get("embedding_dim")
        actual = getattr(self, "embedding_dim", 0)
        if isinstance(requested, int) and requested and actual and actual != requested:
            raise EncoderLoadError(
                f"{self.describe()} produces {actual}-d embeddings, but embedding_dim="
                f"{requested} was requested (e.g. by a bundle); use the model the bundle was "
                "trained with"
            )

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Load (or move) the weights onto ``device``. Implemented by plugins (or override ``load``)."""
        raise IncompletePluginError(f"{type(self).__qualname__} implements no load_model")

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this model through its registered factory.

        The default is the constructor's arguments (captured when the object was built, as
        ``huggingface_hub``'s ``ModelHubMixin`` does), without ``config_exclude`` (device,
        dtype), ``None`` values and values JSON cannot store; ``os.PathLike`` values become
        absolute path strings, and ``embedding_dim`` is the known dimension when the
        constructor takes one. Override it only to drop or absolutise values. The result
        must identify the weights exactly (model id, revision...): bundles store it and the
        embedding cache keys on it.
        """
        cfg: dict[str, Any] = {}
        for key, value in self._init_args.items():
            if key in self.config_exclude or value is None:
                continue
            if isinstance(value, os.PathLike):
                value = absolute_path(value)
            if not _jsonable(value):
                logger.warning("%s: constructor argument %r (%s) cannot be stored in a bundle "
                               "config; it is left out", self.describe(), key,
                               type(value).__name__)
                continue
            cfg[key] = value
        if "embedding_dim" in self._init_args and getattr(self, "embedding_dim", 0):
            cfg["embedding_dim"] = self.embedding_dim
        return cfg


def _capture_init_args(cls: type, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments ``cls(*args, **kwargs)`` binds to, defaults included (by name)."""
    init = cls.__init__
    if init is object.__init__:
        return {}
    try:
        sig = inspect.signature(init)
        bound = sig.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return {}  # __init__ itself reports the bad call
    bound.apply_defaults()
    out: dict[str, Any] = {}
    params = list(sig.parameters.values())
    for p in params[1:]:
        if p.name not in bound.arguments or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            out.update(bound.arguments[p.name])
        else:
            out[p.name] = bound.arguments[p.name]
    return out


@dataclass
class SkippedInputs:
    """What :meth:`ModalityEncoder.encode_modal_skipping` returns.

    Attributes:
        embeddings: ``[len(kept), d]`` L2-normalised embeddings of the inputs that were read.
        kept: the input positions of the rows of ``embeddings``.
        skipped: ``(position, reason)`` of every input that could not be read.
    """

    embeddings: torch.Tensor
    kept: list[int]
    skipped: list[tuple[int, str]]


_SKIPPABLE = (InvalidInputError, EncoderError, InvalidEmbeddingError)


class ModalityEncoder(_Lazy):
    """A contrastive encoder with a text branch and a modal branch.

    Subclasses set ``name``, ``modality``, ``embedding_dim`` and ``input_spec`` and write the
    model in one of two styles:

    * the batch methods :meth:`load_model`, :meth:`encode_text_batch` and
      :meth:`encode_modal_batch` (optionally :meth:`preprocess`);
    * or the public ones, ``load()``, ``encode_text(texts)`` and ``encode_modal(inputs)``,
      written for one list of inputs.

    Either way the base class loads lazily (once per device), validates the inputs, batches
    them, checks and L2-normalises the outputs, and re-raises the plugin's own exceptions as
    typed errors (:class:`EncoderLoadError`, :class:`EncoderError`) naming the encoder, its
    plugin, its modality and the failing input positions. :meth:`config` defaults to the
    constructor arguments.

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

    _natural: ClassVar[dict[str, str]] = {"encode_text": "encode_text_batch",
                                          "encode_modal": "encode_modal_batch"}
    _required: ClassVar[tuple[tuple[str, str], ...]] = (
        ("load_model", "load"),
        ("encode_text_batch", "encode_text"),
        ("encode_modal_batch", "encode_modal"),
    )

    # -- what plugins implement -------------------------------------------------------------
    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Embed one batch of texts with the text branch: ``[len(texts), embedding_dim]``.

        Runs under ``torch.inference_mode``; need not normalise. (Or override ``encode_text``.)
        """
        natural = getattr(type(self), "_natural_encode_text", None)
        if natural is None:
            raise IncompletePluginError(f"{type(self).__qualname__} implements no encode_text_batch")
        return natural(self, texts)

    def encode_modal_batch(self, batch: Any) -> torch.Tensor:
        """Embed one preprocessed batch with the modal branch: ``[batch_size, embedding_dim]``.

        (Or override ``encode_modal``, which then receives the raw inputs of one batch.)
        """
        natural = getattr(type(self), "_natural_encode_modal", None)
        if natural is None:
            raise IncompletePluginError(
                f"{type(self).__qualname__} implements no encode_modal_batch")
        return natural(self, batch)

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
            f"{self.name} text", show_progress_bar, sort_key=self.text_length, owner=self,
        )

    encode_text._textme_base = True  # type: ignore[attr-defined]

    def encode_modal(
        self, inputs: Sequence[Any], batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> torch.Tensor:
        """Embed modal inputs (see ``input_spec``); L2-normalised float32 ``[N, d]`` on CPU."""
        items = _check_list(inputs, f"{self.name}.encode_modal")
        self.load()
        if hasattr(type(self), "_natural_encode_modal"):
            fn = self.encode_modal_batch  # the natural override takes raw inputs
        else:
            fn = lambda chunk: self.encode_modal_batch(self.preprocess(chunk))  # noqa: E731
        return _batched(
            items, batch_size, fn, self.embedding_dim, f"{self.name} {self.modality}",
            show_progress_bar, owner=self,
        )

    encode_modal._textme_base = True  # type: ignore[attr-defined]

    def encode_modal_skipping(
        self, inputs: Sequence[Any], batch_size: int = 32, show_progress_bar: bool | None = None
    ) -> "SkippedInputs":
        """Embed the inputs that can be read and skip the others (``--on-error skip``).

        Batches are encoded as by :meth:`encode_modal`; a batch that fails on its inputs
        (a missing, damaged or unreadable item: :class:`InvalidInputError`,
        :class:`EncoderError`, :class:`InvalidEmbeddingError`) is retried item by item, and the
        items that fail alone are skipped with their reason. Loading errors still raise.

        Returns:
            A :class:`SkippedInputs` with the embeddings of the kept inputs (in input order),
            their positions, and the skipped positions with the reasons.
        """
        items = _check_list(inputs, f"{self.name}.encode_modal_skipping")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.load()
        parts: list[torch.Tensor] = []
        kept: list[int] = []
        skipped: list[tuple[int, str]] = []
        from tqdm.auto import tqdm

        starts = range(0, len(items), batch_size)
        bar = auto_progress(show_progress_bar, len(starts) > 8)
        for start in tqdm(starts, desc=f"{self.name} {self.modality}", disable=not bar,
                          leave=False):
            chunk = items[start:start + batch_size]
            try:
                parts.append(self.encode_modal(chunk, batch_size, show_progress_bar=False))
                kept.extend(range(start, start + len(chunk)))
                continue
            except _SKIPPABLE:
                pass
            for i, item in enumerate(chunk, start):
                try:
                    parts.append(self.encode_modal([item], 1, show_progress_bar=False))
                    kept.append(i)
                except _SKIPPABLE as exc:
                    cause = exc.__cause__  # the plugin's own error, without our batch framing
                    skipped.append((i, f"{type(cause).__name__}: {cause}" if cause else str(exc)))
        if skipped:
            shown = "; ".join(f"{i}: {why}" for i, why in skipped[:3])
            logger.warning("%s: skipped %d of %d inputs that could not be read (%s%s)",
                           self.describe(), len(skipped), len(items), shown,
                           " ..." if len(skipped) > 3 else "")
        emb = torch.cat(parts) if parts else torch.empty(0, self.embedding_dim)
        return SkippedInputs(emb, kept, skipped)

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


class AnchorModel(_Lazy):
    """A text-embedding model that defines the shared anchor space.

    Subclasses set ``name`` and ``embedding_dim`` and implement :meth:`load_model` and
    :meth:`encode_batch` (or override ``load()`` and ``encode(texts, role)``; see
    :class:`ModalityEncoder` for the two styles). ``role`` distinguishes queries (which some
    models prefix with an instruction) from documents.
    """

    name: str = "anchor"
    embedding_dim: int = 0
    license: str | None = None

    _natural: ClassVar[dict[str, str]] = {"encode": "encode_batch"}
    _required: ClassVar[tuple[tuple[str, str], ...]] = (
        ("load_model", "load"), ("encode_batch", "encode"))

    def encode_batch(self, texts: list[str], role: Role) -> torch.Tensor:
        """Embed one batch of texts: ``[len(texts), embedding_dim]``; need not normalise."""
        natural = getattr(type(self), "_natural_encode", None)
        if natural is None:
            raise IncompletePluginError(f"{type(self).__qualname__} implements no encode_batch")
        return _call_with_accepted(natural, self, texts, role)

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
            f"{self.name} anchor", show_progress_bar, sort_key=len, owner=self,
        )

    encode._textme_base = True  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.embedding_dim})"
