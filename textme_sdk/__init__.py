"""textme-sdk: text-only modality expansion (TextME) as a library.

Bridge any contrastive encoder (CLIP, CLAP, ...) into one text-embedding anchor space using
text only::

    from textme_sdk import TextME, get_encoder, get_anchor, compute_offsets, train_projector

    encoder, anchor = get_encoder("clip"), get_anchor("minilm")
    offsets = compute_offsets(encoder, texts=captions[:5000], inputs=images[:5000])
    projector = train_projector(encoder, anchor, captions, offsets)
    model = TextME(anchor).add_modality(encoder, projector, offsets)
    model.save_pretrained("my-bundle")                       # or .push_to_hub("org/name")
    TextME.from_pretrained("my-bundle").embed(images, modality="image")

The whole public API is listed in ``__all__`` below.
"""

from .bundle import FORMAT_VERSION
from .encoders import AnchorModel, InputSpec, ModalityEncoder, resolve_device
from .engine.cache import EmbeddingCache
from .engine.offsets import Offsets
from .engine.projector import Projector
from .engine.trainer import TrainConfig, TrainResult
from . import errors as _errors
from .errors import *  # noqa: F403 - every typed error is public (errors.__all__)
from .heads import ClassifierHead, HeadConfig, fit_head
from .hookspecs import hookimpl
from .model import TextME
from .plugins import (
    get_anchor,
    get_encoder,
    get_loss,
    list_anchors,
    list_encoders,
    list_losses,
    plugin_status,
    reload_plugins,
)
from .training import compute_offsets, fit_recentring, train_projector
from .search import Index, Query, SearchResult, bundle_fingerprint  # cross-modal search

__version__ = "0.1.0"

__all__ = [
    # the model
    "TextME",
    # building blocks
    "ModalityEncoder",
    "AnchorModel",
    "InputSpec",
    "Projector",
    "Offsets",
    "TrainConfig",
    "TrainResult",
    "EmbeddingCache",
    # the two training steps
    "compute_offsets",
    "train_projector",
    # few-shot classifier heads
    "fit_head",
    "HeadConfig",
    "ClassifierHead",
    "fit_recentring",
    # plugins
    "hookimpl",
    "get_encoder",
    "get_anchor",
    "list_encoders",
    "list_anchors",
    "get_loss",
    "list_losses",
    "plugin_status",
    "reload_plugins",
    "resolve_device",
    "FORMAT_VERSION",
    # cross-modal search
    "Index",
    "Query",
    "SearchResult",
    "bundle_fingerprint",
]
__all__ += _errors.__all__
