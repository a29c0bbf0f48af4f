"""textme-sdk: text-only modality expansion (TextME) as a library."""

from .encoders import AnchorModel, InputSpec, ModalityEncoder, resolve_device
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .hookspecs import hookimpl
from .plugins import (
    get_anchor,
    get_encoder,
    list_anchors,
    list_encoders,
    plugin_status,
    reload_plugins,
)

__version__ = "0.1.0"
