"""Cross-modal search over a bridged anchor space: one :class:`Index` API, three backends.

* ``exact``: chunked torch matmul (up to ~100K items; the reference for recall);
* ``faiss``: FAISS in process (HNSW / IVF-Flat / IVF-PQ chosen with autofaiss);
* ``milvus``: Milvus Lite (an embedded local database) or a Milvus server / cluster by ``uri``.

faiss and pymilvus are imported only when their backend is used.
"""

from .errors import (
    BackendUnavailableError,
    EmptyIndexError,
    ForeignBundleError,
    IndexFormatError,
    SearchError,
)
from .fingerprint import bundle_fingerprint
from .index import Index, Query, SearchResult

__all__ = ["Index", "Query", "SearchResult", "bundle_fingerprint", "SearchError",
           "ForeignBundleError", "EmptyIndexError", "IndexFormatError", "BackendUnavailableError"]
