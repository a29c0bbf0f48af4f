"""The TextME engine: pure torch, no knowledge of plugins or the Hub.

Each module is one step of the method:

* :mod:`.offsets` - centroids ``mu_text`` / ``mu_modal`` (paper Sec. 3.2).
* :mod:`.projector` - the 2-layer GELU MLP ``P`` (paper Eq. 6).
* :mod:`.losses` - hard-negative InfoNCE (paper Eq. 4).
* :mod:`.cache` - embeddings of the training texts, computed once.
* :mod:`.trainer` - the training loop (AdamW, cosine, AMP, resume).
"""

from .cache import EmbeddingCache, content_key
from .losses import hard_negative_infonce, infonce
from .offsets import Offsets, StreamingMean
from .projector import Projector
from .trainer import TrainConfig, TrainResult, fit_projector

__all__ = [
    "EmbeddingCache",
    "content_key",
    "hard_negative_infonce",
    "infonce",
    "Offsets",
    "StreamingMean",
    "Projector",
    "TrainConfig",
    "TrainResult",
    "fit_projector",
]
