"""Text-embedding extraction at scale, into the on-disk cache that training reads.

The paper trains each projector on ~100K descriptions; with a 4B-8B anchor, embedding them is
the expensive part of training, so it is done once, ahead of time, and possibly on many GPUs:

.. code-block:: bash

    textme embed-texts captions.txt --anchor qwen3 -a model_id=Qwen/Qwen3-Embedding-4B
    torchrun --nproc-per-node 8 -m textme_sdk.cli embed-texts captions.txt --anchor qwen3
    accelerate launch -m textme_sdk.cli embed-texts captions.txt --encoder clip

Every process reads the same text file, computes its share of fixed-size chunks
(chunk ``c`` goes to rank ``c % world_size``) and writes each finished chunk to the cache
folder; rank 0 then merges them into the one entry that :func:`~textme_sdk.train_projector`
(and ``textme train``) looks up, so the training run never loads the anchor. An interrupted
extraction resumes from its finished chunks, under any number of processes. Several machines
need a cache folder they all share (``--cache`` / ``$TEXTME_HOME`` on a network file system).
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .encoders import AnchorModel, ModalityEncoder
from .engine.cache import EmbeddingCache
from .errors import EmptyInputError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = ["DistributedContext", "cache_key", "distributed_context", "extract_text_embeddings",
           "save_embeddings"]


@dataclass
class DistributedContext:
    """Where this process sits in a (possibly single-process) run.

    Attributes:
        rank: this process's index, 0 ... ``world_size - 1``.
        world_size: number of processes.
        local_rank: index on this machine (selects the GPU).
        barrier: blocks until every process reached it (a no-op for one process).
        owns_group: whether :func:`distributed_context` created the process group (and so
            destroys it in :meth:`close`).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    barrier: Callable[[], None] = field(default=lambda: None, repr=False)
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        """``cuda:local_rank`` when CUDA is available, else CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")

    def close(self) -> None:
        """Tear down a process group this module created."""
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_group = False


def distributed_context(init: bool = True, timeout_s: float = 3600.0) -> DistributedContext:
    """Detect a torchrun / Accelerate / Slurm launch and join its process group.

    An already initialised ``torch.distributed`` group is used as it is. Otherwise the
    environment variables every launcher sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``, ``MASTER_PORT``) are read; with ``WORLD_SIZE > 1`` and ``init=True`` a
    group is created (NCCL on CUDA, gloo on CPU). Without them this is a single process.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(),
                                  int(os.environ.get("LOCAL_RANK", dist.get_rank())), dist.barrier)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not init:
        raise InvalidInputError(
            f"WORLD_SIZE={world} is set but no process group is initialised; call "
            "distributed_context(init=True) or torch.distributed.init_process_group() first")
    if not dist.is_available():
        raise InvalidInputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    logger.info("joined a %s process group as rank %d of %d", backend, rank, world)
    return DistributedContext(rank, world, local, dist.barrier, owns_group=True)


def cache_key(model: AnchorModel | ModalityEncoder, role: str = "document") -> dict[str, Any]:
    """The model description the embedding cache is keyed by (with the texts themselves).

    The same key is used by :func:`~textme_sdk.training.anchor_embeddings` and
    :func:`~textme_sdk.training.encoder_text_embeddings`, so extracted embeddings are exactly
    the ones training looks up. Encoders have no prompt roles: their key ignores ``role``.
    """
    if isinstance(model, AnchorModel):
        return {"kind": "anchor", "plugin": model.name, "config": model.config(), "role": role}
    if isinstance(model, ModalityEncoder):
        return {"kind": "encoder-text", "plugin": model.name, "config": model.config()}
    raise InvalidInputError(
        f"expected an AnchorModel or a ModalityEncoder, got {type(model).__name__}; build one "
        "with textme_sdk.get_anchor(...) or textme_sdk.get_encoder(...)")


def extract_text_embeddings(
    model: AnchorModel | ModalityEncoder,
    texts: Sequence[str],
    role: str = "document",
    cache: EmbeddingCache | str | os.PathLike | None = None,
    batch_size: int = 128,
    chunk_size: int = 8192,
    show_progress_bar: bool | None = None,
    context: DistributedContext | None = None,
) -> torch.Tensor:
    """Embed ``texts`` with an anchor (or an encoder's text branch) into the cache.

    Runs unchanged in one process or under torchrun / ``accelerate launch``: each process
    computes its share of the chunks on its own device and every process returns the full,
    merged ``[len(texts), d]`` matrix (float32 view of the float16 cache entry).

    Args:
        model: an anchor (``role`` selects its prompt) or an encoder (its text branch).
        texts: the texts, in order; duplicates are embedded as they are.
        role: ``"document"`` (what training uses) or ``"query"``.
        cache: the cache (default: ``$TEXTME_HOME/embeddings``); every process must see the
            same folder.
        batch_size: texts per model call.
        chunk_size: texts per resumable unit (and per shard); keep it fixed to resume.
        show_progress_bar: progress bars (default: on a terminal, rank 0 only).
        context: from :func:`distributed_context` (detected when ``None``).

    Raises:
        EmptyInputError: ``texts`` is empty.
        InvalidInputError: ``model`` is neither an anchor nor an encoder, or ``role`` is bad.
    """
    texts = list(texts)
    if not texts:
        raise EmptyInputError("extract_text_embeddings got no texts")
    if role not in ("query", "document"):
        raise InvalidInputError(f"role must be 'query' or 'document', got {role!r}")
    key = cache_key(model, role)
    ctx = context or distributed_context()
    store = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    model.prefer_device(ctx.device())  # cuda:LOCAL_RANK per process; no-op once loaded
    if isinstance(model, AnchorModel):
        def compute(chunk: list[str]) -> torch.Tensor:
            return model.encode(chunk, role, batch_size, show_progress_bar=False)
    else:
        def compute(chunk: list[str]) -> torch.Tensor:
            return model.encode_text(chunk, batch_size, show_progress_bar=False)
    out = store.get_or_compute(key, texts, compute, chunk_size, show_progress_bar,
                               f"{model.name} embeddings", ctx.rank, ctx.world_size, ctx.barrier)
    return out.float()


def save_embeddings(path: str | os.PathLike, embeddings: torch.Tensor) -> Path:
    """Write an embedding matrix to ``.npy`` or ``.safetensors`` (key ``embeddings``) atomically."""
    from .engine.cache import atomic_save

    path = Path(path)
    if path.suffix == ".safetensors":
        atomic_save({"embeddings": embeddings.contiguous()}, path)
    elif path.suffix == ".npy":
        import tempfile

        import numpy as np

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npy")
        os.close(fd)
        try:
            np.save(tmp, embeddings.numpy())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    else:
        raise InvalidInputError(f"{path}: embeddings are written to .npy or .safetensors files")
    return path
