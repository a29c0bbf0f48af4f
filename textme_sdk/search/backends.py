"""Search backends: exact (torch), FAISS (in process) and Milvus (a vector database).

A backend stores unit-norm ``float32`` vectors under integer labels and answers inner-product
(= cosine) top-k queries. It knows nothing of ids, modalities' names or bundles: :class:`Index`
keeps those. Labels are positions in insertion order; removed items are masked out
(``allowed``) by the exact and FAISS backends and deleted by Milvus. Heavy libraries (faiss,
pymilvus) are imported when a backend is first used, never when ``textme_sdk`` is imported.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInputError
from .errors import BackendUnavailableError, IndexFormatError

logger = logging.getLogger(__name__)

__all__ = ["ExactBackend", "FaissBackend", "MilvusBackend", "make_backend", "BACKENDS",
           "EXACT_LIMIT", "HNSW_LIMIT"]

#: ``backend="auto"`` searches exactly up to this many items, and builds FAISS beyond.
EXACT_LIMIT = 100_000
#: Auto FAISS builds HNSW below this size and IVF above: HNSW inserts one item at a time and
#: its build time on a few CPU cores grows past many minutes beyond a few hundred thousand items.
HNSW_LIMIT = 200_000
#: IVF lists at most (adding costs ``n * nlist * d``; autofaiss would pick 16,384 at 1M items).
MAX_NLIST = 4096
#: From this many IVF lists on, the coarse quantizer is trained by two-level k-means (see
#: :meth:`FaissBackend.train_ivf`): plain k-means costs ``64 * nlist**2 * d`` per iteration on
#: a training sample of 64 points per list, which at 4,096 lists is most of a 1M-item build.
TWO_LEVEL_MIN_NLIST = 1024


def _topk_merge(best_s: torch.Tensor | None, best_l: torch.Tensor | None, s: torch.Tensor,
                labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    if best_s is not None:
        s = torch.cat([best_s, s], dim=1)
        labels = torch.cat([best_l, labels], dim=1)
    top = s.topk(min(k, s.shape[1]), dim=1)
    return top.values, labels.gather(1, top.indices)


#: Rows per thread at least before a single query's scan is split between threads.
SPLIT_MIN_ROWS = 16384
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _mv_into(x: torch.Tensor, q: torch.Tensor, out: torch.Tensor) -> None:
    with torch.inference_mode():  # thread-local: the caller's mode does not reach a worker
        torch.mv(x, q, out=out)


def matvec(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``x @ q`` for one query, the rows split between ``torch.get_num_threads()`` threads.

    One query's scan is a matrix-vector product: it reads every vector once and is bound by
    memory bandwidth, and BLAS runs it on one thread, which on this project's 2-core machine
    streams ~16 GB/s where two threads stream ~29 GB/s. Each thread computes ``torch.mv`` on its
    own block of rows (torch releases the GIL), so every score is computed as by one
    ``torch.mv`` over the block, and the result does not depend on the thread count beyond
    float rounding of the BLAS kernel.
    """
    global _pool
    n = x.shape[0]
    parts = min(torch.get_num_threads(), n // SPLIT_MIN_ROWS)
    if parts <= 1:
        return torch.mv(x, q)
    with _pool_lock:
        if _pool is None or _pool._max_workers < parts:
            _pool = ThreadPoolExecutor(parts, thread_name_prefix="textme-exact")
        pool = _pool
    out = torch.empty(n, dtype=x.dtype)
    step = -(-n // parts)
    futures = [pool.submit(_mv_into, x[s:s + step], q, out[s:s + step]) for s in range(0, n, step)]
    for f in futures:
        f.result()
    return out


class ExactBackend:
    """Brute force: chunked ``queries @ vectors.T`` with torch (also the reference for recall)."""

    name = "exact"

    def __init__(self, dim: int, chunk_rows: int = 65536, **options: Any):
        if options:
            raise InvalidInputError(f"the exact backend takes no options {sorted(options)}; "
                                    "it has only chunk_rows")
        self.dim = dim
        self.chunk_rows = int(chunk_rows)
        self._parts: list[torch.Tensor] = []
        self._matrix: torch.Tensor | None = torch.empty(0, dim)

    def config(self) -> dict[str, Any]:
        return {"chunk_rows": self.chunk_rows}

    @property
    def vectors(self) -> torch.Tensor:
        if self._parts:
            self._matrix = torch.cat([self._matrix, *self._parts])
            self._parts = []
        return self._matrix

    def add(self, vectors: np.ndarray, labels: np.ndarray, modalities: list[str]) -> None:
        self._parts.append(torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)))

    def remove(self, labels: np.ndarray) -> None:
        """Nothing to do: removed labels are masked out by ``allowed``."""

    @torch.inference_mode()
    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None,
               modalities: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
        x = self.vectors
        qt = torch.from_numpy(q)
        mask = None if allowed is None else torch.from_numpy(allowed)
        if len(qt) == 1 and x.shape[0] > 0:  # one query: one bandwidth-bound pass, threads split
            s = matvec(x, qt[0]).unsqueeze(0)
            if mask is not None:
                s.masked_fill_(~mask, float("-inf"))
            top = s.topk(min(k, s.shape[1]), dim=1)
            labels = top.indices.numpy().astype(np.int64)
            scores = top.values.numpy()
            labels[~np.isfinite(scores)] = -1
            return scores, labels
        best_s = best_l = None
        for start in range(0, x.shape[0], self.chunk_rows):
            block = x[start:start + self.chunk_rows]
            s = (block @ qt.T).T  # a contiguous [rows, d] left operand: the fast gemv/gemm path
            if mask is not None:
                s.masked_fill_(~mask[start:start + block.shape[0]], float("-inf"))
            top = s.topk(min(k, s.shape[1]), dim=1)
            best_s, best_l = _topk_merge(best_s, best_l, top.values, top.indices + start, k)
        labels = best_l.numpy().astype(np.int64)
        scores = best_s.numpy()
        labels[~np.isfinite(scores)] = -1
        return scores, labels

    def save(self, folder: Path) -> list[str]:
        from safetensors.torch import save_file

        save_file({"vectors": self.vectors.contiguous()}, str(folder / "vectors.safetensors"))
        return ["vectors.safetensors"]

    def load(self, folder: Path, count: int) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            x = load_file(str(folder / "vectors.safetensors"))["vectors"]
        except (OSError, KeyError, SafetensorError) as exc:
            raise IndexFormatError(f"{folder / 'vectors.safetensors'} is unreadable ({exc}); "
                                   "rebuild the index") from None
        if tuple(x.shape) != (count, self.dim) or x.dtype != torch.float32:
            raise IndexFormatError(f"{folder / 'vectors.safetensors'} holds {tuple(x.shape)} "
                                   f"{x.dtype}, the manifest says ({count}, {self.dim}); rebuild")
        self._matrix, self._parts = x, []

    def close(self) -> None:
        pass


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise BackendUnavailableError(
            "the faiss backend needs faiss: pip install 'textme-sdk[search]' (or faiss-cpu)") from None
    return faiss


def choose_faiss_key(n: int, dim: int, max_memory: str = "8G", max_nlist: int = MAX_NLIST) -> str:
    """The FAISS index factory string for ``n`` vectors of ``dim`` under a memory budget.

    autofaiss picks the family (flat, HNSW, IVF-Flat, or OPQ + IVF-PQ when the vectors do not
    fit ``max_memory``); we ask it for a memory-mappable (IVF) index from :data:`HNSW_LIMIT`
    items on, and cap the IVF list count at ``max_nlist`` so that k-means stays affordable on a
    few CPU cores. Without autofaiss: ``Flat`` / ``HNSW32`` / ``IVF{nlist},Flat``.
    """
    try:
        from autofaiss.external.optimize import get_optimal_index_keys_v2
    except ImportError:
        if n < 1000:
            return "Flat"
        if n < HNSW_LIMIT:
            return "HNSW32"
        return f"IVF{min(max_nlist, 2 ** round(math.log2(4 * math.sqrt(n))))},Flat"
    key = get_optimal_index_keys_v2(n, dim, max_memory, should_be_memory_mappable=n >= HNSW_LIMIT,
                                    ivf_flat_threshold=2 ** 62)[0]
    if n < 1000 and key.startswith("IVF1,"):
        return "Flat"

    def cap(match: Any) -> str:
        return f"IVF{min(int(match.group(1)), max_nlist)}"

    import re

    return re.sub(r"IVF(\d+)", cap, key)


class FaissBackend:
    """A FAISS index (inner product on unit vectors = cosine).

    Args:
        dim: vector dimension.
        index_key: a ``faiss.index_factory`` string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``,
            ``"IVF4096,PQ64"``...); ``None`` lets :func:`choose_faiss_key` pick from the size of
            the first batch added.
        nprobe: IVF lists visited per query (default ``max(8, nlist // 64)``).
        ef_search: HNSW candidate list at search (default 128).
        ef_construction: HNSW candidate list at build (default 80).
        max_memory: memory budget for the automatic choice (``"8G"``).
        max_nlist: cap on the automatic IVF list count.
        gpu: move the index to a GPU when faiss was built with GPU support (``None``: when one
            is there).
        two_level: train an IVF coarse quantizer by two-level k-means (``None``: from
            :data:`TWO_LEVEL_MIN_NLIST` lists on; ``False``: faiss's plain k-means always).
    """

    name = "faiss"

    def __init__(self, dim: int, index_key: str | None = None, nprobe: int | None = None,
                 ef_search: int | None = None, ef_construction: int | None = None,
                 max_memory: str = "8G", max_nlist: int = MAX_NLIST, gpu: bool | None = None,
                 two_level: bool | None = None):
        self.faiss = _import_faiss()
        self.two_level = two_level
        self.dim = dim
        self.index_key = index_key
        self.nprobe, self.ef_search, self.ef_construction = nprobe, ef_search, ef_construction
        self.max_memory, self.max_nlist, self.gpu = max_memory, int(max_nlist), gpu
        self.index: Any = None
        self._search_index: Any = None

    def config(self) -> dict[str, Any]:
        return {"index_key": self.index_key, "nprobe": self.nprobe, "ef_search": self.ef_search,
                "ef_construction": self.ef_construction, "max_memory": self.max_memory,
                "max_nlist": self.max_nlist, "two_level": self.two_level}

    def _create(self, sample: np.ndarray) -> None:
        faiss = self.faiss
        if self.index_key is None:
            self.index_key = choose_faiss_key(len(sample), self.dim, self.max_memory, self.max_nlist)
        try:
            index = faiss.index_factory(self.dim, self.index_key, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InvalidInputError(f"faiss cannot build index_key={self.index_key!r}: "
                                    f"{str(exc).splitlines()[0]}; use a faiss.index_factory string") from None
        hnsw = self._hnsw(index)
        if hnsw is not None:
            hnsw.efConstruction = self.ef_construction or 80
        if not index.is_trained:
            ivf = self._ivf(index)
            need = ivf.nlist if ivf is not None else 256
            if len(sample) < need:
                raise InvalidInputError(
                    f"index_key={self.index_key!r} needs at least {need} vectors to train, the "
                    f"first batch has {len(sample)}; add more items at once or pick a smaller index")
            per_list = 64
            n_train = min(len(sample), (ivf.nlist if ivf is not None else 256) * per_list)
            rng = np.random.default_rng(0)
            pick = np.sort(rng.choice(len(sample), n_train, replace=False))
            self.train_ivf(index, np.ascontiguousarray(sample[pick]))
        self.index = index
        if self.nprobe is None and self._ivf(index) is not None:
            self.nprobe = max(8, self._ivf(index).nlist // 64)
        if self.ef_search is None and hnsw is not None:
            self.ef_search = 128

    def train_ivf(self, index: Any, xt: np.ndarray) -> None:
        """Train ``index`` on ``xt``; an IVF quantizer of many lists by two-level k-means.

        Two-level k-means (faiss's ``contrib.clustering.two_level_clustering``) clusters the
        sample into ``sqrt(nlist)`` groups, then each group into its share of the lists: about
        ``sqrt(nlist)`` times less work than k-means over all lists at once (at 4,096 lists, 1M
        items and d = 384, seconds instead of minutes on 2 cores). The centroids are normalised
        (spherical k-means), as inner-product search on unit vectors wants. ``index.train``
        then trains whatever else the index has (OPQ, PQ codebooks); it does not redo the
        coarse quantizer once it holds its ``nlist`` centroids.
        """
        faiss = self.faiss
        ivf = self._ivf(index)
        inner = faiss.downcast_index(index)
        use = self.two_level
        if use is None:
            use = ivf is not None and ivf.nlist >= TWO_LEVEL_MIN_NLIST
        # a transform in front (OPQ) must be trained first: leave those to faiss
        if not use or ivf is None or isinstance(inner, faiss.IndexPreTransform) or ivf.nlist < 4:
            index.train(xt)
            return
        from faiss.contrib.clustering import two_level_clustering

        nc1 = max(2, int(round(math.sqrt(ivf.nlist))))
        # one thread: the second level runs sqrt(nlist) small k-means, whose parallel regions
        # are too short to pay for their barriers; on 2 busy cores two threads made the whole
        # training 3x slower (159 s against 49 s for 4,096 lists, 262K points, d = 384)
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            centroids, _ = two_level_clustering(xt, nc1, ivf.nlist, spherical=True, seed=1234)
        finally:
            faiss.omp_set_num_threads(threads)
        quantizer = faiss.downcast_index(ivf.quantizer)
        quantizer.reset()
        quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
        index.train(xt)  # finishes training (the quantizer already holds its centroids)

    def _ivf(self, index: Any) -> Any:
        try:
            return self.faiss.extract_index_ivf(index)
        except RuntimeError:
            return None

    def _hnsw(self, index: Any) -> Any:
        inner = self.faiss.downcast_index(index)
        if isinstance(inner, self.faiss.IndexPreTransform):
            inner = self.faiss.downcast_index(inner.index)
        return getattr(inner, "hnsw", None)

    def add(self, vectors: np.ndarray, labels: np.ndarray, modalities: list[str]) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.index is None:
            self._create(vectors)
        if self.index.ntotal != labels[0]:
            raise IndexFormatError("faiss labels out of step with the index; rebuild it")
        for start in range(0, len(vectors), 65536):
            self.index.add(vectors[start:start + 65536])
        self._search_index = None

    def remove(self, labels: np.ndarray) -> None:
        """Nothing to do: removed labels are masked out by ``allowed`` (an ID selector)."""

    def _params(self, allowed: np.ndarray | None) -> tuple[Any, Any]:
        faiss = self.faiss
        sel = keep = None
        if allowed is not None:
            keep = np.packbits(allowed.astype(np.uint8), bitorder="little")
            sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(keep))
        kwargs = {} if sel is None else {"sel": sel}
        if self._ivf(self.index) is not None:
            params = faiss.SearchParametersIVF(nprobe=int(self.nprobe), **kwargs)
        elif self._hnsw(self.index) is not None:
            params = faiss.SearchParametersHNSW(efSearch=int(self.ef_search), **kwargs)
        else:
            params = faiss.SearchParameters(**kwargs) if kwargs else None
        return params, (keep, sel)

    def _searcher(self) -> Any:
        if self._search_index is None:
            self._search_index = self.index
            want = self.gpu if self.gpu is not None else torch.cuda.is_available()
            if want and hasattr(self.faiss, "StandardGpuResources"):
                self._gpu_res = self.faiss.StandardGpuResources()
                self._search_index = self.faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
        return self._search_index

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None,
               modalities: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
        index = self._searcher()
        params, _alive = self._params(allowed)
        if params is None:
            scores, labels = index.search(q, k)
        else:
            scores, labels = index.search(q, k, params=params)
        scores = scores.astype(np.float32)
        scores[labels < 0] = -np.inf
        return scores, labels.astype(np.int64)

    def save(self, folder: Path) -> list[str]:
        self.faiss.write_index(self.index, str(folder / "vectors.faiss"))
        return ["vectors.faiss"]

    def load(self, folder: Path, count: int) -> None:
        try:
            index = self.faiss.read_index(str(folder / "vectors.faiss"))
        except RuntimeError as exc:
            raise IndexFormatError(f"{folder / 'vectors.faiss'} is unreadable "
                                   f"({str(exc).splitlines()[0]}); rebuild the index") from None
        if index.ntotal != count or index.d != self.dim:
            raise IndexFormatError(f"{folder / 'vectors.faiss'} holds {index.ntotal} x {index.d}, "
                                   f"the manifest says {count} x {self.dim}; rebuild the index")
        self.index, self._search_index = index, None

    def close(self) -> None:
        pass


class MilvusBackend:
    """A Milvus collection: Milvus Lite (an embedded local database) or a server by ``uri``.

    Args:
        dim: vector dimension.
        uri: ``None`` for Milvus Lite in a private working folder (copied into the index folder
            by ``save``), or a Milvus server / cluster address (``"http://host:19530"``).
        token: the server's token (``"user:password"`` or an API key).
        collection: collection name (default ``"textme_index"``).
        index_type: Milvus index (``"FLAT"`` exact, ``"IVF_FLAT"``, ``"HNSW"`` on servers;
            ``"AUTOINDEX"``); default ``"FLAT"``.
        index_params: passed to Milvus when the index is created (e.g. ``{"nlist": 1024}``).
        search_params: passed to Milvus searches (e.g. ``{"nprobe": 32}``).
    """

    name = "milvus"

    def __init__(self, dim: int, uri: str | None = None, token: str | None = None,
                 collection: str = "textme_index", index_type: str = "FLAT",
                 index_params: dict[str, Any] | None = None,
                 search_params: dict[str, Any] | None = None):
        try:
            import pymilvus
        except ImportError:
            raise BackendUnavailableError(
                "the milvus backend needs pymilvus and milvus-lite: pip install "
                "'textme-sdk[search]'") from None
        self.pymilvus = pymilvus
        self.dim, self.uri, self.token = dim, uri, token
        self.collection, self.index_type = collection, index_type
        self.index_params, self.search_params = dict(index_params or {}), dict(search_params or {})
        self._work: Path | None = None
        self._client: Any = None
        self._dirty = False  # rows inserted since the last flush (growing segments search slowly)

    @property
    def lite(self) -> bool:
        return self.uri is None

    def config(self) -> dict[str, Any]:
        return {"uri": self.uri, "collection": self.collection, "index_type": self.index_type,
                "index_params": self.index_params, "search_params": self.search_params}

    def _db(self) -> Path:
        if self._work is None:
            self._work = Path(tempfile.mkdtemp(prefix="textme-milvus-"))
        return self._work / "milvus.db"

    def client(self) -> Any:
        if self._client is None:
            uri = str(self._db()) if self.lite else self.uri
            kwargs = {"token": self.token} if self.token else {}
            self._client = self.pymilvus.MilvusClient(uri, **kwargs)
            if not self._client.has_collection(self.collection):
                self._create()
            else:
                self._client.load_collection(self.collection)
        return self._client

    def _create(self) -> None:
        DataType = self.pymilvus.DataType
        schema = self.pymilvus.MilvusClient.create_schema(auto_id=False)
        schema.add_field("label", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("modality", DataType.VARCHAR, max_length=256)
        ip = self._client.prepare_index_params()
        ip.add_index(field_name="vector", index_type=self.index_type, metric_type="IP",
                     params=self.index_params)
        self._client.create_collection(self.collection, schema=schema, index_params=ip)

    def add(self, vectors: np.ndarray, labels: np.ndarray, modalities: list[str]) -> None:
        client = self.client()
        for start in range(0, len(vectors), 5000):
            rows = [{"label": int(lab), "vector": v, "modality": m} for lab, v, m in zip(
                labels[start:start + 5000].tolist(), vectors[start:start + 5000].tolist(),
                modalities[start:start + 5000])]
            client.insert(self.collection, rows)
        self._dirty = True

    def remove(self, labels: np.ndarray) -> None:
        if len(labels):
            self.client().delete(self.collection, ids=[int(x) for x in labels])

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None,
               modalities: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
        flt = ""
        if modalities is not None:
            flt = "modality in [" + ", ".join(f'"{m}"' for m in modalities) + "]"
        params = {"metric_type": "IP", "params": self.search_params}
        if self._dirty:  # seal what was inserted: searches of growing segments are ~40x slower
            self.client().flush(self.collection)
            self._dirty = False
        res = self.client().search(self.collection, data=q.tolist(), limit=k, filter=flt,
                                   search_params=params, output_fields=[])
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        labels = np.full((len(q), k), -1, dtype=np.int64)
        for i, hits in enumerate(res):
            for j, hit in enumerate(list(hits)[:k]):
                labels[i, j] = int(hit["label"] if "label" in hit else hit["id"])
                scores[i, j] = float(hit["distance"])
        return scores, labels

    def save(self, folder: Path) -> list[str]:
        if not self.lite:
            return []  # the data lives in the server; the manifest records where
        self.client()
        self._client.flush(self.collection)
        self._client.close()
        self._client = None  # the database is consistent on disk only once closed
        shutil.copytree(self._db(), folder / "milvus.db", symlinks=False)
        return ["milvus.db"]

    def load(self, folder: Path, count: int) -> None:
        if self.lite:
            src = folder / "milvus.db"
            if not src.exists():
                raise IndexFormatError(f"{src} is missing; rebuild the index")
            shutil.copytree(src, self._db())  # work on a copy: the saved index stays as saved
        uri = self.uri or str(folder / "milvus.db")
        try:
            uri_client = self.pymilvus.MilvusClient(str(self._db()) if self.lite else self.uri,
                                                    **({"token": self.token} if self.token else {}))
            found = uri_client.has_collection(self.collection)
        except self.pymilvus.MilvusException as exc:
            raise IndexFormatError(f"cannot open the Milvus database at {uri}: {exc}") from None
        if not found:
            uri_client.close()
            raise IndexFormatError(f"the Milvus collection {self.collection!r} is missing at "
                                   f"{uri}; rebuild the index")
        self._client = uri_client
        self._client.load_collection(self.collection)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            self._client = None
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


BACKENDS = {"exact": ExactBackend, "faiss": FaissBackend, "milvus": MilvusBackend}


def make_backend(name: str, dim: int, options: dict[str, Any]) -> Any:
    """A backend by name with its options (typed error for unknown names and options)."""
    if name not in BACKENDS:
        raise InvalidInputError(f"unknown backend {name!r}; use one of auto, {', '.join(BACKENDS)}")
    try:
        return BACKENDS[name](dim, **options)
    except TypeError as exc:
        raise InvalidInputError(f"backend {name!r} does not take these options ({exc}); see "
                                f"help(textme_sdk.search.backends.{BACKENDS[name].__name__})") from None
