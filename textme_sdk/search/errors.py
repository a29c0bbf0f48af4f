"""Typed errors of cross-modal search (all subclasses of :class:`~textme_sdk.TextMEError`)."""

from __future__ import annotations

from ..errors import TextMEError

__all__ = ["SearchError", "ForeignBundleError", "EmptyIndexError", "IndexFormatError",
           "BackendUnavailableError"]


class SearchError(TextMEError):
    """Base class of problems with a search index."""


class ForeignBundleError(SearchError, ValueError):
    """Queries (or added items) were embedded by another bundle than the one that built the index."""


class EmptyIndexError(SearchError, ValueError):
    """A search of an index that holds no items."""


class IndexFormatError(SearchError, ValueError):
    """A saved index is damaged, incomplete, or was written by a newer format."""


class BackendUnavailableError(SearchError, ImportError):
    """A backend's library is not installed (``pip install 'textme-sdk[search]'``)."""
