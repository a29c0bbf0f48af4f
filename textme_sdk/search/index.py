"""``Index``: a persistent cross-modal search index over a bridged anchor space.

Items of any modality (images, sounds, texts, ...) embedded by one bundle live in one index;
queries of any modality, or weighted compositions of several (:class:`Query`), find them::

    index = Index.build(model, image_paths, modality="image")
    index.add(sound_paths, modality="audio", model=model)      # one index, two modalities
    hits = index.search(["a dog barking"], k=5)                # text -> images and sounds
    hits = index.search(["clip.wav"], modality="audio", filter_modality="image")
    index.save("my-index")
    Index.load("my-index", model=model).search(...)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import (
    DimensionMismatchError,
    EmptyInputError,
    InvalidEmbeddingError,
    InvalidInputError,
    MissingFileError,
    OutputExistsError,
)
from .backends import EXACT_LIMIT, make_backend
from .errors import EmptyIndexError, IndexFormatError
from .fingerprint import bundle_fingerprint, check_compatible, merge

logger = logging.getLogger(__name__)

__all__ = ["Index", "SearchResult", "Query", "MANIFEST_NAME", "INDEX_FORMAT_VERSION"]

MANIFEST_NAME = "index.json"
ITEMS_NAME = "items.json"
STATE_NAME = "state.safetensors"
INDEX_FORMAT_VERSION = 1
_FORMAT = "textme-index"


@dataclass
class Query:
    """One composed query: a weighted sum of several inputs' embeddings (then normalised).

    ``parts`` holds ``(input, modality, weight)`` triples, e.g.
    ``Query([("dog.wav", "audio", 1.0), ("at night", "text", 0.5)])``; ``modality`` is
    ``"text"``, a bundle modality, or ``"embedding"`` for a precomputed anchor-space vector.
    """

    parts: list[tuple[Any, str, float]]

    def __post_init__(self) -> None:
        if not self.parts:
            raise EmptyInputError("a Query needs at least one (input, modality, weight) part")
        for part in self.parts:
            if not (isinstance(part, tuple) and len(part) == 3):
                raise InvalidInputError(f"a Query part is (input, modality, weight), got {part!r}")


@dataclass
class SearchResult:
    """Hits of a batch of queries, best first.

    Attributes:
        ids: ``ids[i]`` are the ids of query ``i``'s hits.
        scores: ``[n_queries, width]`` cosine similarities (``width = min(k, matching items)``);
            a row that an approximate backend filled with fewer hits is padded with ``-inf``
            (and its ``ids`` row is shorter).
        modalities: the modality of each hit.
        metadata: the metadata stored with each hit (``None`` if none).
    """

    ids: list[list[str]]
    scores: np.ndarray
    modalities: list[list[str]]
    metadata: list[list[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: one list of hits per query."""
        return {"hits": [[{"id": i, "score": float(s), "modality": m, "metadata": md}
                          for i, s, m, md in zip(ids, scores, mods, meta)]
                         for ids, scores, mods, meta in zip(self.ids, self.scores, self.modalities,
                                                            self.metadata)]}


def _as_matrix(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} must be a numeric [N, d] array, got {type(x).__name__} "
                                f"({exc})") from None
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2:
        raise InvalidInputError(f"{what} must be [N, d] (or one [d] vector), got shape {arr.shape}")
    return arr


def _check_rows(x: np.ndarray, what: str) -> np.ndarray:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise InvalidEmbeddingError(f"NaN/inf in {what}: {len(rows)} of {len(x)} rows (first: "
                                    f"{rows[:5].tolist()}); drop or recompute them")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = (norms[:, 0] == 0)
    if zero.any():
        raise InvalidEmbeddingError(f"{what} has all-zero rows {np.flatnonzero(zero)[:5].tolist()}"
                                    "; a zero vector has no direction to search")
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def _jsonable(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata of {where} is not plain JSON ({exc}); store strings, "
                                "numbers, lists and dicts") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode())
                h.update(_sha256(p).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class Index:
    """A search index of anchor-space embeddings with ids, modalities and metadata.

    Build one with :meth:`build` (embeds raw items with a model) or :meth:`from_embeddings`;
    grow it with :meth:`add` / :meth:`add_embeddings`, shrink it with :meth:`remove`, query it
    with :meth:`search`, persist it with :meth:`save` / :meth:`load`.

    Args:
        dim: embedding dimension (the anchor's).
        backend: ``"exact"``, ``"faiss"``, ``"milvus"`` or ``"auto"`` (exact up to
            :data:`~textme_sdk.search.backends.EXACT_LIMIT` items in the first batch, FAISS
            beyond).
        **backend_options: passed to the backend (see :mod:`textme_sdk.search.backends`), e.g.
            ``index_key="IVF1024,Flat"``, ``nprobe=32`` for FAISS; ``uri=``, ``token=`` for Milvus.
    """

    def __init__(self, dim: int, backend: str = "auto", **backend_options: Any):
        if not isinstance(dim, int) or dim < 1:
            raise InvalidInputError(f"dim must be a positive integer, got {dim!r}")
        self.dim = dim
        self._backend_name = backend
        self._options = backend_options
        self._backend: Any = None
        if backend != "auto":
            self._backend = make_backend(backend, dim, backend_options)
        self._ids: list[str] = []
        self._modalities: list[str] = []
        self._modality_masks: dict[tuple[str, ...], np.ndarray] = {}  # filter -> [total] bool
        self._metadata: list[Any] = []
        self._alive = np.zeros(0, dtype=bool)
        self._label: dict[str, int] = {}
        self.fingerprint: dict[str, Any] | None = None
        self.model: Any = None

    # ------------------------------------------------------------------------ construction
    @classmethod
    def build(cls, model: Any, items: Sequence[Any], modality: str, ids: Sequence[str] | None = None,
              metadata: Sequence[Any] | None = None, backend: str = "auto", batch_size: int = 32,
              show_progress_bar: bool | None = None, cache: Any = None,
              **backend_options: Any) -> "Index":
        """Embed ``items`` of ``modality`` with ``model`` and index them.

        Modal items are embedded through the on-disk embedding cache (as evaluation does), so an
        interrupted build resumes where it stopped. Call :meth:`add` to put another modality in
        the same index.

        Args:
            model: a :class:`~textme_sdk.TextME`.
            items: inputs of ``modality`` (file paths, arrays, texts ...).
            modality: ``"text"`` or a modality of ``model``.
            ids: one unique id per item (default: the path for file inputs, else
                ``"{modality}-{n}"``).
            metadata: one JSON-able value per item, returned with hits.
            backend: see :class:`Index`.
            cache: the item-embedding cache (default ``$TEXTME_HOME/embeddings``; ``False`` off).
            **backend_options: see :class:`Index`.
        """
        index = cls(int(model.anchor.embedding_dim), backend, **backend_options)
        index.add(items, modality, model=model, ids=ids, metadata=metadata, batch_size=batch_size,
                  show_progress_bar=show_progress_bar, cache=cache)
        return index

    @classmethod
    def from_embeddings(cls, embeddings: Any, ids: Sequence[str] | None = None,
                        metadata: Sequence[Any] | None = None, backend: str = "auto",
                        modality: str = "embedding", model: Any = None,
                        **backend_options: Any) -> "Index":
        """Index precomputed anchor-space embeddings ``[N, d]``.

        ``model``, if given, is the bundle that embedded them: its fingerprint is recorded, so
        queries from another bundle are refused, and raw queries can be embedded.
        """
        x = _as_matrix(embeddings, "embeddings")
        index = cls(int(x.shape[1]), backend, **backend_options)
        index.add_embeddings(x, ids=ids, metadata=metadata, modality=modality, model=model)
        return index

    # ------------------------------------------------------------------------------- adding
    def _attach(self, model: Any) -> None:
        fp = bundle_fingerprint(model)
        if int(fp["anchor"]["embedding_dim"]) != self.dim:
            raise DimensionMismatchError(
                f"the index holds {self.dim}-d embeddings but {fp['anchor']['name']!r} embeds "
                f"{fp['anchor']['embedding_dim']}-d; use the bundle that built the index")
        self.fingerprint = merge(self.fingerprint, fp)
        self.model = model

    def add(self, items: Sequence[Any], modality: str, model: Any = None,
            ids: Sequence[str] | None = None, metadata: Sequence[Any] | None = None,
            batch_size: int = 32, show_progress_bar: bool | None = None, cache: Any = None) -> "Index":
        """Embed raw ``items`` of ``modality`` (with ``model``, default the index's) and add them.

        Raises:
            EmptyInputError: no items.
            ForeignBundleError: ``model`` is not compatible with the bundle that built the index.
            InvalidInputError: ids not unique, or a wrong number of ids / metadata.
        """
        items = list(items) if not isinstance(items, (str, os.PathLike)) else [items]
        if not items:
            raise EmptyInputError(f"no {modality} items to index")
        model = model if model is not None else self._need_model()
        if self.fingerprint is not None:
            check_compatible(self.fingerprint, bundle_fingerprint(model))
        ids = self._new_ids(items, modality, ids)
        self._check_metadata(metadata, len(items))
        if modality == "text":
            emb = model.embed(items, modality="text", batch_size=batch_size,
                              show_progress_bar=show_progress_bar, convert_to_tensor=True)
        else:
            from ..evaluation.harness import item_embeddings

            enc = model.entry(modality).encoder
            raw = item_embeddings(enc, items, cache, batch_size, show_progress_bar)
            emb = model.project(raw, modality)
        return self.add_embeddings(emb, ids=ids, metadata=metadata, modality=modality, model=model)

    def add_embeddings(self, embeddings: Any, ids: Sequence[str] | None = None,
                       metadata: Sequence[Any] | None = None, modality: str = "embedding",
                       model: Any = None) -> "Index":
        """Add precomputed anchor-space embeddings ``[N, d]`` (normalised on the way in).

        Raises:
            DimensionMismatchError: not ``d``-wide.
            InvalidEmbeddingError: NaN/inf or all-zero rows (nothing is added).
            InvalidInputError: duplicate ids, or a wrong number of ids / metadata.
        """
        x = _as_matrix(embeddings, "embeddings")
        if len(x) == 0:
            raise EmptyInputError("no embeddings to index")
        if x.shape[1] != self.dim:
            raise DimensionMismatchError(f"the index holds {self.dim}-d embeddings, got "
                                         f"{x.shape[1]}-d; embed with the index's bundle")
        x = _check_rows(x, "the embeddings to index")
        ids = self._new_ids([None] * len(x), modality, ids)
        self._check_metadata(metadata, len(x))
        meta = ([_jsonable(m, f"item {i!r}") for m, i in zip(metadata, ids)] if metadata is not None
                else [None] * len(x))
        if not isinstance(modality, str) or not modality:
            raise InvalidInputError(f"modality must be a non-empty string, got {modality!r}")
        if model is not None:
            self._attach(model)
        if self._backend is None:
            name = "exact" if len(x) <= EXACT_LIMIT else "faiss"
            self._backend = make_backend(name, self.dim, self._options)
        start = len(self._ids)
        labels = np.arange(start, start + len(x), dtype=np.int64)
        self._backend.add(x, labels, [modality] * len(x))
        self._ids += ids
        self._modalities += [modality] * len(x)
        self._modality_masks = {}
        self._metadata += meta
        self._alive = np.concatenate([self._alive, np.ones(len(x), dtype=bool)])
        self._label.update(zip(ids, labels.tolist()))
        return self

    def _new_ids(self, items: list[Any], modality: str, ids: Sequence[str] | None) -> list[str]:
        if ids is None:
            n0 = len(self._ids)
            ids = [str(it) if isinstance(it, (str, os.PathLike)) and modality != "text"
                   else f"{modality}-{n0 + i}" for i, it in enumerate(items)]
        ids = [str(i) for i in ids]
        if len(ids) != len(items):
            raise InvalidInputError(f"{len(ids)} ids for {len(items)} items; pass one id per item")
        dup = [i for i in ids if i in self._label]
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup += [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]
        if dup:
            raise InvalidInputError(f"ids must be unique: {dup[:5]} already in the index or repeated; "
                                    "remove them first or pass other ids")
        return ids

    @staticmethod
    def _check_metadata(metadata: Sequence[Any] | None, n: int) -> None:
        if metadata is not None and len(metadata) != n:
            raise InvalidInputError(f"{len(metadata)} metadata values for {n} items; pass one per item")

    def remove(self, ids: Sequence[str]) -> int:
        """Remove items by id; returns how many were removed (unknown ids are ignored).

        Removed items never come back in results, also after :meth:`save` / :meth:`load`; their
        ids may be reused by a later :meth:`add`.
        """
        ids = [ids] if isinstance(ids, str) else list(ids)
        labels = np.array([self._label.pop(str(i)) for i in ids if str(i) in self._label],
                          dtype=np.int64)
        if len(labels):
            self._backend.remove(labels)
            self._alive[labels] = False
        return int(len(labels))

    def __len__(self) -> int:
        return len(self._label)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._label

    @property
    def backend(self) -> str | None:
        """The backend's name (``None`` until the first items choose it under ``"auto"``)."""
        return None if self._backend is None else self._backend.name

    @property
    def modalities(self) -> dict[str, int]:
        """Item count per modality."""
        out: dict[str, int] = {}
        for label in self._label.values():
            m = self._modalities[label]
            out[m] = out.get(m, 0) + 1
        return out

    def ids(self) -> list[str]:
        """The ids of the items in the index, in insertion order."""
        return [self._ids[i] for i in sorted(self._label.values())]

    # ----------------------------------------------------------------------------- queries
    def _need_model(self) -> Any:
        if self.model is None:
            src = (self.fingerprint or {}).get("source")
            if not src:
                raise InvalidInputError(
                    "raw queries need the bundle that built the index: pass model=... (or "
                    "--bundle), or search with precomputed embeddings")
            from ..model import TextME

            try:
                model = TextME.from_pretrained(src)
            except MissingFileError:
                raise InvalidInputError(f"the index's bundle {src} is gone; pass model=... "
                                        "(or --bundle)") from None
            self._attach(model)
        return self.model

    def embed_queries(self, queries: Any, modality: str | None = None, model: Any = None,
                      batch_size: int = 32) -> np.ndarray:
        """The ``[n, d]`` unit query vectors :meth:`search` would use (see its arguments)."""
        if isinstance(queries, Query):
            queries = [queries]
        if isinstance(queries, (np.ndarray, torch.Tensor)) and modality in (None, "embedding"):
            return self._embedding_queries(queries)
        if isinstance(queries, (str, os.PathLike)):
            queries = [queries]
        queries = list(queries)
        if not queries:
            raise EmptyInputError("no queries")
        if any(isinstance(q, Query) for q in queries):
            if not all(isinstance(q, Query) for q in queries):
                raise InvalidInputError("mix of Query objects and plain inputs; wrap each in a Query")
            return np.concatenate([self._compose(q, model, batch_size) for q in queries])
        modality = modality or ("text" if all(isinstance(q, str) for q in queries) else "embedding")
        if modality == "embedding":
            return self._embedding_queries(queries)
        model = self._query_model(model, modality)
        emb = model.embed(queries, modality=modality, batch_size=batch_size, role="query",
                          convert_to_tensor=True)
        return _check_rows(_as_matrix(emb, "the query embeddings"), "the query embeddings")

    def _embedding_queries(self, x: Any) -> np.ndarray:
        q = _as_matrix(x, "the query embeddings")
        if q.shape[1] != self.dim:
            raise DimensionMismatchError(f"the index holds {self.dim}-d embeddings, the queries "
                                         f"are {q.shape[1]}-d; embed them with the index's bundle")
        return _check_rows(q, "the query embeddings")

    def _query_model(self, model: Any, modality: str) -> Any:
        if model is None:
            return self._need_model()
        fp = bundle_fingerprint(model)
        if self.fingerprint is not None:
            check_compatible(self.fingerprint, fp)
        if int(fp["anchor"]["embedding_dim"]) != self.dim:
            raise DimensionMismatchError(f"the index holds {self.dim}-d embeddings but the model "
                                         f"embeds {fp['anchor']['embedding_dim']}-d")
        return model

    def _compose(self, query: Query, model: Any, batch_size: int) -> np.ndarray:
        total = np.zeros((1, self.dim), dtype=np.float64)
        for value, modality, weight in query.parts:
            if modality == "embedding":
                v = self._embedding_queries(value)
            else:
                v = self.embed_queries([value], modality, model, batch_size)
            if len(v) != 1:
                raise InvalidInputError("each part of a Query is one input (or one vector)")
            total += float(weight) * v
        return _check_rows(total.astype(np.float32), "the composed query (weights cancel out?)")

    def search(self, queries: Any, k: int = 10, modality: str | None = None,
               filter_modality: str | Sequence[str] | None = None, model: Any = None,
               batch_size: int = 32) -> SearchResult:
        """The ``k`` nearest items of each query, best first.

        Args:
            queries: texts; raw inputs of ``modality``; precomputed anchor-space embeddings
                (``[n, d]`` array or tensor, or a list of vectors); or :class:`Query` objects
                (weighted compositions of several inputs).
            k: hits per query. When fewer items match (a small index, or a filter), every
                matching item is returned and the result is narrower than ``k``.
            modality: the queries' modality: ``"text"``, a bundle modality, or ``"embedding"``;
                ``None`` = text for strings, embeddings for arrays.
            filter_modality: only return items of this modality (or these modalities).
            model: the bundle to embed raw queries with (default: the one that built the index,
                reloaded from the path its manifest records).

        Raises:
            EmptyIndexError: the index holds no items.
            ForeignBundleError: ``model`` is not the bundle (anchor, projectors) the index was
                built with.
            DimensionMismatchError: query embeddings of another width.
            InvalidEmbeddingError: NaN/inf in the queries.
            InvalidInputError: ``k`` < 1.
        """
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        if len(self) == 0:
            raise EmptyIndexError("the index holds no items; add some before searching")
        q = self.embed_queries(queries, modality, model, batch_size)
        mods = None
        allowed = None if len(self._label) == len(self._ids) else self._alive  # O(1): no scan
        if filter_modality is not None:
            mods = [filter_modality] if isinstance(filter_modality, str) else list(filter_modality)
            mask = self._modality_mask(mods)
            allowed = mask if allowed is None else (mask & allowed)
        n_match = len(self) if allowed is None else int(allowed.sum())
        width = min(int(k), n_match)
        if width == 0:
            return SearchResult([[] for _ in q], np.zeros((len(q), 0), np.float32),
                                [[] for _ in q], [[] for _ in q])
        scores, labels = self._backend.search(q, width, allowed, mods)
        ids, modalities, metadata = [], [], []
        for row in labels:
            row = [int(x) for x in row if x >= 0 and self._alive[x]]
            ids.append([self._ids[x] for x in row])
            modalities.append([self._modalities[x] for x in row])
            metadata.append([self._metadata[x] for x in row])
        for i, row in enumerate(ids):  # keep scores aligned with the kept hits
            scores[i, len(row):] = -np.inf
        return SearchResult(ids, scores, modalities, metadata)

    def _modality_mask(self, mods: list[str]) -> np.ndarray:
        """Which items (alive or not) have one of ``mods``: built once per filter and reused by
        every later query until items are added (a scan of the Python list per query costs
        ~7 ms at 100K items)."""
        key = tuple(sorted({str(m) for m in mods}))
        mask = self._modality_masks.get(key)
        if mask is None or len(mask) != len(self._ids):
            mask = np.isin(np.asarray(self._modalities, dtype=object), list(key))
            self._modality_masks[key] = mask
        return mask

    # ------------------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the index to ``directory`` atomically; returns the folder.

        ``directory`` may be missing, an empty folder, or an index saved before (replaced). At
        every moment it holds the previous index or the new one: the files are written into a
        sibling folder that is renamed into place when complete. Nothing is pickled: a JSON
        manifest (``index.json``) with the bundle fingerprint, JSON items, safetensors state and
        the backend's own files (``vectors.safetensors``, ``vectors.faiss``, ``milvus.db``).

        Raises:
            EmptyIndexError: nothing was ever added (no backend to save).
            OutputExistsError: ``directory`` exists and is not a textme index.
        """
        from safetensors.torch import save_file

        from .. import bundle as B

        if self._backend is None:
            raise EmptyIndexError("the index holds no items; add some before saving")
        dest = Path(directory)
        dest.parent.mkdir(parents=True, exist_ok=True)
        B.recover_interrupted_save(dest)
        replace = _check_index_target(dest)
        tmp, lock = B._staging(dest)
        try:
            files = self._backend.save(tmp)
            items = {"ids": self._ids, "modalities": self._modalities, "metadata": self._metadata}
            B._write_bytes(tmp / ITEMS_NAME, json.dumps(items, allow_nan=False).encode())
            save_file({"alive": torch.from_numpy(self._alive.astype(np.uint8))}, str(tmp / STATE_NAME))
            files += [ITEMS_NAME, STATE_NAME]
            manifest = {
                "format": _FORMAT, "format_version": INDEX_FORMAT_VERSION,
                "backend": self._backend.name, "backend_config": self._backend.config(),
                "dim": self.dim, "count": len(self), "total": len(self._ids),
                "modalities": self.modalities, "fingerprint": self.fingerprint,
                "sha256": {f: _sha256(tmp / f) for f in files},
                "versions": B._versions(),
            }
            B._write_json(tmp / MANIFEST_NAME, manifest)
            B._fsync_dir(tmp)
            old = B._install(tmp, dest, replace=replace)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            B._unlock(lock)
        if old is not None:
            B._remove(old, dest)
        return dest

    @classmethod
    def load(cls, directory: str | os.PathLike, model: Any = None) -> "Index":
        """Load an index saved by :meth:`save`.

        Args:
            directory: the index folder.
            model: the bundle to embed raw queries with; checked against the recorded
                fingerprint. ``None``: loaded from the recorded bundle path on first need.

        Raises:
            MissingFileError: no index there.
            IndexFormatError: damaged files, or a newer format.
            ForeignBundleError: ``model`` is not the bundle that built the index.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .. import bundle as B

        folder = Path(directory)
        B.recover_interrupted_save(folder)
        manifest = _read_manifest(folder)
        for name, digest in manifest["sha256"].items():
            path = folder / name
            if not path.exists() or _sha256(path) != digest:
                raise IndexFormatError(f"{path} is missing or does not match its recorded hash; "
                                       "the index was damaged: rebuild it")
        index = cls(int(manifest["dim"]), manifest["backend"], **manifest["backend_config"])
        try:
            items = json.loads((folder / ITEMS_NAME).read_text(encoding="utf-8"))
            alive = load_file(str(folder / STATE_NAME))["alive"].numpy().astype(bool)
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            raise IndexFormatError(f"{folder} holds damaged item tables ({exc}); rebuild it") from None
        total = int(manifest["total"])
        if not (len(items["ids"]) == len(items["modalities"]) == len(items["metadata"]) ==
                len(alive) == total):
            raise IndexFormatError(f"{folder}: item tables disagree with the manifest; rebuild it")
        index._backend.load(folder, total)
        index._ids, index._modalities, index._metadata = (
            list(items["ids"]), list(items["modalities"]), list(items["metadata"]))
        index._alive = alive
        index._modality_masks = {}
        index._label = {index._ids[i]: i for i in np.flatnonzero(alive).tolist()}
        index.fingerprint = manifest.get("fingerprint")
        if model is not None:
            if index.fingerprint is not None:
                check_compatible(index.fingerprint, bundle_fingerprint(model))
            index._attach(model)
        return index

    def close(self) -> None:
        """Release backend resources (a Milvus Lite working copy); the saved index is untouched."""
        if self._backend is not None:
            self._backend.close()

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}={n}" for m, n in self.modalities.items())
        return f"Index({len(self)} items [{mods}], dim={self.dim}, backend={self.backend})"


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise MissingFileError(f"{folder} holds no textme index ({MANIFEST_NAME} is missing); "
                               "build one with Index.build(...).save() or `textme index`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{path} is not valid JSON ({exc}); rebuild the index") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise IndexFormatError(f"{path} is not a textme index manifest")
    if int(manifest.get("format_version", 0)) > INDEX_FORMAT_VERSION:
        raise IndexFormatError(f"{folder} was written by a newer textme-sdk (index format "
                               f"{manifest['format_version']}); upgrade: pip install -U textme-sdk")
    for key in ("backend", "backend_config", "dim", "total", "sha256"):
        if key not in manifest:
            raise IndexFormatError(f"{path} lacks {key!r}; rebuild the index")
    return manifest


def _check_index_target(dest: Path) -> bool:
    """Whether ``dest`` holds an index to replace; refuse anything else that is not empty."""
    if not os.path.lexists(dest):
        return False
    if not dest.is_dir():
        raise OutputExistsError(f"{dest} exists and is not a folder; save the index elsewhere")
    if not os.listdir(dest):
        return False
    try:
        _read_manifest(dest)
    except (MissingFileError, IndexFormatError):
        raise OutputExistsError(f"{dest} exists and is not a textme index; nothing was changed: "
                                "save to a new or empty folder") from None
    return True
