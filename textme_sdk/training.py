"""The two training steps of TextME, on top of plugins and the engine.

1. :func:`compute_offsets` - centroids of an encoder's text and modal branches from unpaired
   samples.
2. :func:`train_projector` - a projector trained on text descriptions only: centred
   encoder-text embeddings mapped onto the anchor embeddings of the same texts.

Embeddings of the training texts are cached on disk (see :class:`~textme_sdk.engine.EmbeddingCache`):
a second run with the same encoder, anchor and texts never loads either model.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from .encoders import AnchorModel, ModalityEncoder
from .engine.bridge import AnchorRecentring, BridgeMapping
from .engine.cache import EmbeddingCache, content_key
from .engine.offsets import Offsets, StreamingMean
from .engine.projector import Projector
from .engine.trainer import TrainConfig, TrainResult, fit_projector
from .errors import (
    AnchorMismatchError,
    DimensionMismatchError,
    EmptyInputError,
    InvalidInputError,
    UnknownModalityError,
)
from .extraction import cache_key
from .plugins import get_loss

logger = logging.getLogger(__name__)

__all__ = ["compute_offsets", "train_projector", "encoder_text_embeddings", "anchor_embeddings",
           "fit_recentring"]


def _chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def compute_offsets(
    encoder: ModalityEncoder,
    texts: Iterable[str],
    inputs: Iterable[Any],
    batch_size: int = 64,
    show_progress_bar: bool | None = None,
    on_error: str = "raise",
) -> Offsets:
    """Estimate ``mu_text`` and ``mu_modal`` of ``encoder`` from unpaired samples.

    Both means are streamed in float64 over batches of normalised embeddings, so any number
    of samples fits in memory. The paper uses 5,000 of each (1,000 already give stable
    offsets, Table 13); the texts and inputs need not describe each other.

    Args:
        encoder: the encoder whose modality gap to measure.
        texts: descriptions of the modality's domain (an iterable is consumed once).
        inputs: modal inputs of the kind ``encoder.input_spec`` describes.
        batch_size: inputs per encoder call.
        show_progress_bar: forwarded to the encoder.
        on_error: ``"raise"`` (default) stops at the first unreadable modal input;
            ``"skip"`` leaves unreadable inputs out of ``mu_modal`` (a warning names them) and
            lists them in the returned ``Offsets.skipped``.

    Raises:
        EmptyInputError: no texts or no modal inputs. There is no fallback: a modal centroid
            cannot be replaced by the text one.
    """
    encoder.load()  # some encoders only know their dimension once loaded
    text_mean = StreamingMean(encoder.embedding_dim)
    for chunk in _chunks(texts, batch_size * 16):
        text_mean.update(encoder.encode_text(chunk, batch_size, show_progress_bar))
    if on_error not in ("raise", "skip"):
        raise InvalidInputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    modal_mean = StreamingMean(encoder.embedding_dim)
    skipped: list[tuple[int, str]] = []
    seen = 0
    for chunk in _chunks(inputs, batch_size * 16):
        if on_error == "skip":
            part = encoder.encode_modal_skipping(chunk, batch_size, show_progress_bar)
            skipped += [(seen + i, why) for i, why in part.skipped]
            if len(part.kept):
                modal_mean.update(part.embeddings)
        else:
            modal_mean.update(encoder.encode_modal(chunk, batch_size, show_progress_bar))
        seen += len(chunk)
    if modal_mean.count == 0:
        raise EmptyInputError(
            f"compute_offsets needs unpaired {encoder.modality} inputs to estimate mu_modal and got "
            "none; pass e.g. 1,000-5,000 samples of the modality (they need no captions)"
        )
    if text_mean.count == 0:
        raise EmptyInputError("compute_offsets needs texts to estimate mu_text and got none")
    offsets = Offsets.from_embeddings(text_mean, modal_mean)
    offsets.skipped = skipped
    logger.info("offsets of %s: gap %.3f from %d texts / %d inputs", encoder.name, offsets.gap,
                offsets.n_text, offsets.n_modal)
    return offsets


def _cache(cache: EmbeddingCache | str | os.PathLike | bool | None) -> EmbeddingCache | None:
    if cache is False:
        return None
    if cache is None or cache is True:
        return EmbeddingCache()
    if isinstance(cache, EmbeddingCache):
        return cache
    return EmbeddingCache(cache)


def encoder_text_embeddings(
    encoder: ModalityEncoder, texts: Sequence[str], cache: Any = None, batch_size: int = 256,
    show_progress_bar: bool | None = None, dtype: torch.dtype | None = torch.float32,
) -> torch.Tensor:
    """Normalised text-branch embeddings of ``texts``, through the on-disk cache.

    ``dtype=None`` returns the cache entry as stored (float16, memory-mapped: no copy)."""
    store = _cache(cache)
    fn = lambda chunk: encoder.encode_text(chunk, batch_size, show_progress_bar=False)  # noqa: E731
    if store is None:
        return fn(list(texts))
    key = cache_key(encoder)
    return store.get_or_compute(key, texts, fn, show_progress_bar=show_progress_bar,
                                description=f"{encoder.name} text embeddings").to(dtype)


def anchor_embeddings(
    anchor: AnchorModel, texts: Sequence[str], role: str = "document", cache: Any = None,
    batch_size: int = 128, show_progress_bar: bool | None = None,
    dtype: torch.dtype | None = torch.float32,
) -> torch.Tensor:
    """Normalised anchor embeddings of ``texts``, through the on-disk cache.

    ``dtype=None`` returns the cache entry as stored (float16, memory-mapped: no copy)."""
    store = _cache(cache)
    fn = lambda chunk: anchor.encode(chunk, role, batch_size, show_progress_bar=False)  # noqa: E731
    if store is None:
        return fn(list(texts))
    key = cache_key(anchor, role)
    return store.get_or_compute(key, texts, fn, show_progress_bar=show_progress_bar,
                                description=f"{anchor.name} anchor embeddings").to(dtype)


def train_projector(
    encoder: ModalityEncoder,
    anchor: AnchorModel,
    texts: Sequence[str],
    offsets: Offsets,
    config: TrainConfig | None = None,
    cache: EmbeddingCache | str | os.PathLike | bool | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    show_progress_bar: bool | None = None,
    bridge: Any = None,
    bridge_modalities: Sequence[str] | None = None,
) -> Projector:
    """Train the projector of ``encoder`` on text descriptions only (paper Sec. 3.3).

    Each text is embedded by the encoder's text branch (then centred with ``offsets.mu_text``)
    and by the anchor; the projector learns to map the first onto the second with the
    hard-negative InfoNCE loss. No modal sample is used.

    Args:
        encoder: the source encoder (its text branch is used).
        anchor: the anchor model defining the target space.
        texts: ~100K descriptions of the modality's domain in the paper; at least 2.
        offsets: from :func:`compute_offsets` (``Offsets.zeros(d)`` for the no-offset ablation).
        config: hyper-parameters (default: the paper's, :class:`TrainConfig`).
        cache: an :class:`EmbeddingCache`, a folder for one, ``None`` for the default cache,
            or ``False`` to embed without caching.
        checkpoint_dir: where resumable training state is kept; ``resume=True`` continues it.
        show_progress_bar: progress bars for embedding and training.
        bridge: an already-trained model whose modalities act as EmergentBridge bridges (a
            :class:`~textme_sdk.TextME`, a bundle folder or a Hub repo id); it must use the
            same anchor. Needs ``config.bridge_weight > 0``. See ``docs/bridging.md``.
        bridge_modalities: which of the bridge's modalities to use (default: all of them
            except one named like ``encoder.modality``).

    Returns:
        The trained :class:`Projector` (on CPU, eval mode); its ``training_result`` attribute
        holds the :class:`TrainResult` (history, best epoch, throughput), and with a bridge its
        ``bridges`` attribute the fitted :class:`~textme_sdk.engine.bridge.BridgeMapping` per
        bridge modality (saved with the modality by ``TextME.save_pretrained``).

    Raises:
        AnchorMismatchError: the bridge uses another anchor.
        UnknownModalityError: a ``bridge_modalities`` name the bridge does not have.
        InvalidInputError: a bridge without ``bridge_weight > 0``, or the reverse.
    """
    texts = list(texts)
    if len(texts) < 2:
        raise EmptyInputError(f"train_projector needs at least 2 texts, got {len(texts)}")
    if not encoder.embedding_dim:
        encoder.load()  # some encoders only know their dimension once loaded
    if offsets.dim != encoder.embedding_dim:
        raise DimensionMismatchError(
            f"offsets have {offsets.dim} dims but encoder {encoder.name!r} produces "
            f"{encoder.embedding_dim}; compute the offsets with this encoder"
        )
    config = (config or TrainConfig()).validate()
    loss_fn = get_loss(config.loss)  # an unknown loss fails before any embedding work
    bridge_model, bridge_names = resolve_bridge(bridge, bridge_modalities, anchor, encoder.modality,
                                                config)
    # The cached rows stay as stored (float16, memory-mapped); fit_projector centres each batch
    # in float32 (input_offset), the same numbers as centring a float32 copy of everything.
    x = encoder_text_embeddings(encoder, texts, cache, show_progress_bar=show_progress_bar,
                                dtype=None)
    y = anchor_embeddings(anchor, texts, "document", cache, show_progress_bar=show_progress_bar,
                          dtype=None)
    fingerprint = {"texts": len(texts), "texts_sha256": content_key({}, texts)[:16],
                   "encoder": encoder.name, "anchor": anchor.name}
    mappings: dict[str, BridgeMapping] = {}
    targets = None
    if bridge_model is not None:
        for name in bridge_names:
            mappings[name] = fit_bridge_mapping(bridge_model, name, texts, y.float(), cache,
                                                show_progress_bar)
        targets = torch.stack([mappings[n](y.float()) for n in bridge_names], dim=1)
        fingerprint["bridge"] = {n: mappings[n].source for n in bridge_names}
    result: TrainResult = fit_projector(x, y, config, checkpoint_dir, resume, show_progress_bar,
                                        loss_fn=loss_fn, fingerprint=fingerprint,
                                        input_offset=offsets.mu_text, bridge_targets=targets)
    projector = result.projector
    projector.training_result = result
    if mappings:
        projector.bridges = mappings  # type: ignore[attr-defined]
        projector.bridge_info = {"weight": config.bridge_weight,  # type: ignore[attr-defined]
                                 "noise": config.bridge_noise, "mode": config.bridge_mode,
                                 **({"loss": config.bridge_loss}
                                    if config.bridge_loss != "cosine" else {})}
    return projector


def resolve_bridge(
    bridge: Any, bridge_modalities: Sequence[str] | None, anchor: AnchorModel, modality: str,
    config: TrainConfig,
) -> tuple[Any, list[str]]:
    """The bridge model and the names of its bridge modalities, checked (cheap: no encoding).

    Returns ``(None, [])`` without a bridge.
    """
    if bridge is None:
        if bridge_modalities:
            raise InvalidInputError("bridge_modalities needs a bridge (a TextME model or a bundle)")
        if config.bridge_weight:
            raise InvalidInputError(
                f"TrainConfig.bridge_weight={config.bridge_weight} needs a bridge: pass bridge= "
                "(a trained TextME model or bundle), or set bridge_weight=0")
        return None, []
    if not config.bridge_weight:
        raise InvalidInputError("a bridge was given but TrainConfig.bridge_weight is 0, so it would "
                                "be ignored; set bridge_weight > 0 (e.g. 0.5) or drop the bridge")
    from .model import TextME

    if not isinstance(bridge, TextME):
        bridge = TextME.from_pretrained(bridge, modalities=bridge_modalities, anchor=None)
    mine, theirs = cache_key(anchor), cache_key(bridge.anchor)
    if mine != theirs:
        raise AnchorMismatchError(
            f"the bridge's anchor ({theirs['plugin']} {theirs['config']}) differs from this "
            f"modality's anchor ({mine['plugin']} {mine['config']}); a bridge must live in the "
            "same anchor space: train with the bridge's anchor or use another bridge")
    names = list(bridge_modalities) if bridge_modalities else [
        m for m in bridge.modalities if m != modality]
    for name in names:
        bridge.entry(name)  # UnknownModalityError naming what the bridge has
    if not names:
        raise UnknownModalityError(
            f"the bridge has no modality other than {modality!r} to bridge through; train "
            "another modality first or pass bridge_modalities")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"bridge_modalities repeats a name: {names}")
    return bridge, names


def fit_bridge_mapping(
    bridge: Any, name: str, texts: Sequence[str], anchor_emb: torch.Tensor, cache: Any = None,
    show_progress_bar: bool | None = None,
) -> BridgeMapping:
    """Fit ``g_A`` for bridge modality ``name``: anchor embeddings of ``texts`` -> its text path.

    The target of each text is what ``bridge.embed(text, via=name)`` gives,
    ``P_A(E_t^A(t) - mu_text^A)``; the encoder's text embeddings go through the cache.
    """
    entry = bridge.entry(name)
    raw = encoder_text_embeddings(entry.encoder, texts, cache, show_progress_bar=show_progress_bar)
    path = bridge.project(raw, name, branch="text")
    return BridgeMapping.fit(name, anchor_emb, path)


def fit_recentring(
    model: Any, modality: str, inputs: Sequence[Any], texts: Sequence[str], batch_size: int = 64,
    cache: EmbeddingCache | str | os.PathLike | bool | None = None,
    show_progress_bar: bool | None = None,
) -> AnchorRecentring:
    """Estimate the residual modality gap of ``modality`` in the anchor space.

    ``inputs`` (unpaired modal samples, e.g. those of the offsets) are embedded by ``model``
    without any re-centring, ``texts`` (unpaired descriptions of the domain) through the anchor;
    the result holds both centroids. Attach it with
    ``model.add_modality(..., recentring=...)`` (or pass the entry's parts again). The anchor
    embeddings of ``texts`` go through the embedding cache (``cache`` as in
    :func:`train_projector`).

    Raises:
        EmptyInputError: no inputs or no texts.
    """
    inputs, texts = list(inputs), list(texts)
    if not inputs or not texts:
        raise EmptyInputError(f"fit_recentring needs unpaired {modality} inputs and texts, got "
                              f"{len(inputs)} inputs and {len(texts)} texts")
    projected = model.embed(inputs, modality, batch_size, show_progress_bar, convert_to_tensor=True,
                            recentre=False)
    text = anchor_embeddings(model.anchor, texts, "document", cache,
                             show_progress_bar=show_progress_bar)
    return AnchorRecentring.from_embeddings(projected, text)
