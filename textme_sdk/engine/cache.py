"""On-disk cache of text embeddings, keyed by a content hash.

The encoder-text and anchor embeddings of the training texts are computed once and reused by
every epoch and every later run, so training never touches the big models again. Entries are
safetensors files (float16 by default) named by ``sha256(model config, texts)``. Extraction
writes chunk files as it goes, so an interrupted extraction resumes where it stopped; the final
file is written atomically, streamed from the chunk files one at a time.

Entries are read memory-mapped: a cache hit costs no copy of the matrix, the operating system
pages rows in as training gathers them, and so a million cached texts train in bounded memory.
The library only ever replaces entries atomically (never rewrites a file in place), so a mapped
matrix stays valid while a new version of its entry is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..errors import InvalidEmbeddingError
from .numerics import all_finite
from .progress import auto_progress

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingCache", "content_key", "default_cache_dir"]


def default_cache_dir() -> Path:
    """``$TEXTME_HOME`` or ``~/.cache/textme``."""
    root = os.environ.get("TEXTME_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "textme"
    )
    return Path(root)


def content_key(model: dict[str, Any], texts: Sequence[str]) -> str:
    """sha256 over a model description (id, revision, options) and the exact texts."""
    h = hashlib.sha256()
    h.update(json.dumps(model, sort_keys=True, default=str).encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file via a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class EmbeddingCache:
    """Content-addressed store of ``[N, d]`` embedding matrices.

    Args:
        root: cache folder (default :func:`default_cache_dir` / ``embeddings``).
        dtype: storage dtype (float16 halves disk and memory; embeddings are unit-norm).
    """

    def __init__(self, root: str | os.PathLike | None = None, dtype: torch.dtype = torch.float16):
        self.root = Path(root) if root is not None else default_cache_dir() / "embeddings"
        self.dtype = dtype

    def path(self, key: str) -> Path:
        """The file of the entry with content key ``key``."""
        return self.root / key[:2] / f"{key}.safetensors"

    def path_for(self, model: dict[str, Any], texts: Sequence[str]) -> Path:
        """The file that holds (or will hold) the embeddings of ``texts`` under ``model``."""
        return self.path(content_key(model, texts))

    def __contains__(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str, rows: int | None = None) -> torch.Tensor:
        """The entry ``key``; with ``rows``, it must hold that many rows.

        Raises:
            InvalidEmbeddingError: the file is damaged, or holds the wrong number of rows or
                non-finite values (the message names the file; deleting it recomputes it).
        """
        entry = _read(self.path(key), rows)
        if isinstance(entry, str):
            raise InvalidEmbeddingError(
                f"the embedding cache entry {self.path(key)} is unusable ({entry}); delete it "
                "and it is recomputed on the next run")
        return entry

    def _load_or_discard(self, path: Path, rows: int) -> torch.Tensor | None:
        """A valid entry at ``path``, or ``None`` after removing a damaged one (recomputed)."""
        if not path.exists():
            return None
        entry = _read(path, rows)
        if isinstance(entry, str):
            logger.warning("embedding cache entry %s is unusable (%s); it is removed and "
                           "recomputed", path, entry)
            path.unlink(missing_ok=True)
            return None
        return entry

    def get_or_compute(
        self,
        model: dict[str, Any],
        texts: Sequence[str],
        compute: Callable[[list[str]], torch.Tensor],
        chunk_size: int = 8192,
        show_progress_bar: bool | None = None,
        description: str = "embedding texts",
        rank: int = 0,
        world_size: int = 1,
        barrier: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Return the cached embeddings of ``texts`` under ``model``, computing what is missing.

        ``compute(list_of_texts) -> [n, d]`` is called per chunk of ``chunk_size`` texts; each
        finished chunk is saved at once, so a crash loses at most one chunk and a rerun resumes.

        Sharded use (several processes or machines sharing the cache folder): process ``rank``
        of ``world_size`` computes chunks ``rank, rank + world_size, ...``; after ``barrier()``
        rank 0 merges every chunk into the one final entry, and after a second ``barrier()``
        every rank loads it. Chunk boundaries depend only on ``chunk_size``, never on the
        number of processes, so the merged entry is the single-process one and an interrupted
        run resumes under any ``world_size``.
        """
        texts = list(texts)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if world_size > 1 and barrier is None:
            raise ValueError("a sharded extraction (world_size > 1) needs a barrier callable")
        key = content_key(model, texts)
        final = self.path(key)
        hit = self._load_or_discard(final, len(texts)) if rank == 0 or world_size == 1 else None
        if hit is not None:
            logger.info("embedding cache hit %s (%d texts)", key[:12], len(texts))
            return hit
        if world_size > 1 and rank > 0 and final.exists():
            return self.load(key, len(texts))
        parts = self.root / f"{key}.partial-{chunk_size}"
        parts.mkdir(parents=True, exist_ok=True)
        n_chunks = max(1, -(-len(texts) // chunk_size))
        mine = range(rank, n_chunks, world_size)
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(texts[c * chunk_size:(c + 1) * chunk_size]) for c in mine),
                   desc=description + (f" [rank {rank}/{world_size}]" if world_size > 1 else ""),
                   disable=not auto_progress(show_progress_bar, len(mine) > 1) or
                   (world_size > 1 and show_progress_bar is None and rank != 0))
        chunks: dict[int, torch.Tensor | None] = {}
        for c in mine:
            part = parts / f"{c:06d}.safetensors"
            sub = texts[c * chunk_size : (c + 1) * chunk_size]
            emb = self._load_or_discard(part, len(sub))
            if emb is None:
                emb = compute(sub).detach().to("cpu", self.dtype)
                if emb.shape[0] != len(sub) or not all_finite(emb):
                    raise InvalidEmbeddingError(
                        f"embedding chunk {c} has shape {tuple(emb.shape)} or non-finite values"
                    )
                atomic_save({"embeddings": emb}, part)
            chunks[c] = None  # on disk; merged from there, one chunk in memory at a time
            bar.update(len(sub))
        bar.close()
        if world_size > 1:
            barrier()  # every chunk file is written
        if rank == 0:
            for c in range(n_chunks):
                part = parts / f"{c:06d}.safetensors"
                sub = texts[c * chunk_size : (c + 1) * chunk_size]
                emb = self._load_or_discard(part, len(sub))
                if emb is None:
                    raise InvalidEmbeddingError(
                        f"chunk {c} of {key[:12]} is missing or damaged after every rank "
                        f"finished; are all ranks writing to the same cache folder "
                        f"({self.root})? Rerun to recompute it")
                chunks[c] = emb  # memory-mapped
            dims = {(chunks[c].shape[1], chunks[c].dtype) for c in range(n_chunks)}
            if len(dims) != 1:
                raise InvalidEmbeddingError(
                    f"the chunks of {key[:12]} have different widths or dtypes {sorted(map(str, dims))}; "
                    f"delete {parts} and rerun")
            meta = {"model": json.dumps(model, sort_keys=True, default=str), "count": str(len(texts))}
            _stream_save([chunks[c] for c in range(n_chunks)], final, meta)
            del chunks
            out = self.load(key, len(texts))
        if world_size > 1:
            barrier()  # the merged entry exists
        if rank == 0:
            shutil.rmtree(parts, ignore_errors=True)
            return out
        return self.load(key, len(texts))


_DTYPES = {"F16": (torch.float16, np.float16), "F32": (torch.float32, np.float32),
           "F64": (torch.float64, np.float64), "BF16": (torch.bfloat16, np.int16)}
_NAMES = {t: name for name, (t, _) in _DTYPES.items()}


def _header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and where its data starts."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise ValueError(f"header length {n} is implausible")
        raw = f.read(n)
    if len(raw) != n:
        raise ValueError("truncated header")
    header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header, 8 + n


def _read(path: Path, rows: int | None) -> torch.Tensor | str:
    """The ``embeddings`` matrix of a cache file, memory-mapped (copy-on-write), or why it
    cannot be used. The header, the file size and every value are checked first."""
    try:
        header, start = _header(path)
        info = header["embeddings"]
        dtype, np_dtype = _DTYPES[info["dtype"]]
        shape = [int(v) for v in info["shape"]]
        begin, end = (int(v) for v in info["data_offsets"])
        if len(shape) != 2:
            return f"shape {tuple(shape)}, expected {rows} rows"
        nbytes = shape[0] * shape[1] * np.dtype(np_dtype).itemsize
        if end - begin != nbytes or begin < 0 or start + end > path.stat().st_size:
            raise ValueError(f"the data of {tuple(shape)} {info['dtype']} does not fit the file")
        if nbytes == 0:
            emb = torch.empty(shape, dtype=dtype)
        else:
            arr = np.memmap(path, dtype=np_dtype, mode="c", offset=start + begin, shape=tuple(shape))
            emb = torch.from_numpy(arr)
            if dtype == torch.bfloat16:
                emb = emb.view(torch.bfloat16)
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        return f"damaged: {type(exc).__name__}: {exc}"
    if rows is not None and emb.shape[0] != rows:
        return f"shape {tuple(emb.shape)}, expected {rows} rows"
    if not all_finite(emb):
        return "non-finite values"
    return emb


def _stream_save(parts: list[torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write the row-wise concatenation of ``parts`` as one safetensors ``embeddings`` entry,
    one part at a time (never the whole matrix in memory), via a temporary file and an atomic
    rename. Readable by ``safetensors.torch.load_file``."""
    rows, dim, dtype = sum(len(p) for p in parts), parts[0].shape[1], parts[0].dtype
    nbytes = rows * dim * parts[0].element_size()
    header = json.dumps({"__metadata__": metadata,
                         "embeddings": {"dtype": _NAMES[dtype], "shape": [rows, dim],
                                        "data_offsets": [0, nbytes]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned, as safetensors writes
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            for p in parts:
                f.write(p.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
