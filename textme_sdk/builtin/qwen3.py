"""The ``qwen3`` anchor: Qwen3-Embedding (0.6B / 4B / 8B) on plain transformers.

Implements the published recipe: left-padded batches, last-token pooling, L2 normalisation,
queries prefixed with ``"Instruct: {task}\\nQuery:{text}"`` and documents left as they are,
optional Matryoshka truncation to the first ``dim`` dimensions. transformers is imported only
when the weights are loaded.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from ..encoders import AnchorModel, Role
from ..errors import TextMEError
from ..hookspecs import hookimpl

__all__ = ["DEFAULT_TASK", "KNOWN_DIMS", "Qwen3Anchor", "format_query", "last_token_pool"]

DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"

#: Output sizes of the published checkpoints, keyed by the size tag in the model id.
KNOWN_DIMS: dict[str, int] = {"0.6b": 1024, "4b": 2560, "8b": 4096}


def format_query(task: str, text: str) -> str:
    """The Qwen3-Embedding query format (no space after ``Query:``)."""
    return f"Instruct: {task}\nQuery:{text}"


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of each row's last real token, for left- or right-padded batches."""
    if bool(attention_mask[:, -1].all()):  # left padding (or none): the last column
        return hidden[:, -1]
    last = attention_mask.long().sum(dim=1) - 1
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last.to(hidden.device)]


def _known_dim(model_id: str) -> int | None:
    m = re.search(r"qwen3-embedding-(\d+(?:\.\d+)?b)", model_id.lower())
    return KNOWN_DIMS.get(m.group(1)) if m else None


class Qwen3Anchor(AnchorModel):
    """Qwen3-Embedding as the anchor.

    Args:
        model_id: Hub id (``"Qwen/Qwen3-Embedding-4B"``) or a local folder holding the model
            and its tokenizer.
        revision: Hub revision (commit, branch or tag); ``None`` = default branch.
        dtype: weight dtype; default bfloat16 on CUDA (float16 where bf16 is unsupported),
            float32 on CPU.
        device: where to load (default: CUDA when available).
        max_length: maximum tokens per text (longer texts are truncated).
        task: the instruction prepended to queries (``role="query"``).
        dim: Matryoshka truncation: keep the first ``dim`` dimensions and re-normalise.
        embedding_dim: the model's full output size; known from the id for the published
            sizes, otherwise read from the model's config on load.
    """

    name = "qwen3"
    license = "Apache-2.0"

    def __init__(
        self,
        model_id: str = "Qwen/Qwen3-Embedding-4B",
        revision: str | None = None,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        max_length: int = 8192,
        task: str = DEFAULT_TASK,
        dim: int | None = None,
        embedding_dim: int | None = None,
    ):
        super().__init__(device, dtype)
        if os.path.isdir(model_id):
            model_id = os.path.abspath(model_id)
        if dim is not None and int(dim) < 1:
            raise TextMEError(f"dim must be a positive number of dimensions, got {dim}")
        if max_length is not None and int(max_length) < 1:
            raise TextMEError(f"max_length must be >= 1, got {max_length}")
        self.model_id = model_id
        self.revision = revision
        self.max_length = int(max_length)
        self.task = task
        self.dim = int(dim) if dim is not None else None
        self.full_dim: int | None = embedding_dim or _known_dim(model_id)
        self._check_dim()
        self._tokenizer: Any = None
        self._model: Any = None

    # ``embedding_dim`` is what the base class checks outputs against: the truncated size.
    @property
    def embedding_dim(self) -> int:  # type: ignore[override]
        if self.dim is not None:
            return self.dim
        return self.full_dim or 0

    def _check_dim(self) -> None:
        if self.dim is not None and self.full_dim and self.dim > self.full_dim:
            raise TextMEError(
                f"dim={self.dim} exceeds the {self.full_dim}-d output of {self.model_id!r}; "
                f"pass dim <= {self.full_dim} (or dim=None for the full embedding)"
            )

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        if dtype is None:
            if device.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.float32
        if self._model is not None:  # already loaded: move
            self._model = self._model.to(device=device, dtype=dtype)
            return

        from transformers import AutoModel, AutoTokenizer

        kwargs: dict[str, Any] = {}
        if self.revision:
            kwargs["revision"] = self.revision
        tokenizer = AutoTokenizer.from_pretrained(self.model_id, padding_side="left", **kwargs)
        model = AutoModel.from_pretrained(self.model_id, dtype=dtype, **kwargs)

        vocab = getattr(model.config, "vocab_size", None)
        if vocab and len(tokenizer) < 0.5 * vocab:
            raise TextMEError(
                f"the tokenizer loaded for {self.model_id!r} has only {len(tokenizer)} tokens, "
                f"but the model has a {vocab}-token vocabulary: its tokenizer files are missing "
                "or incomplete (offline loads can silently fall back to a stub tokenizer). "
                "Download the full model (tokenizer.json included) or fix the local folder"
            )
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.pad_token is None:
            raise TextMEError(
                f"the tokenizer of {self.model_id!r} defines neither a pad nor an eos token; "
                "batched encoding needs one"
            )
        tokenizer.padding_side = "left"

        hidden = int(model.config.hidden_size)
        if self.full_dim and self.full_dim != hidden:
            raise TextMEError(
                f"anchor {self.model_id!r} produces {hidden}-d embeddings, but {self.full_dim} "
                "was expected (from embedding_dim=... or the model id)"
            )
        self.full_dim = hidden
        self._check_dim()
        model.eval()
        self._model = model.to(device)
        self._tokenizer = tokenizer

    def encode_batch(self, texts: list[str], role: Role) -> torch.Tensor:
        if role == "query":
            texts = [format_query(self.task, t) for t in texts]
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = next(self._model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        out = self._model(**batch)
        emb = last_token_pool(out.last_hidden_state, batch["attention_mask"]).float()
        if self.dim is not None:
            emb = emb[:, : self.dim]
        return torch.nn.functional.normalize(emb, p=2, dim=1)

    def config(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "revision": self.revision,
            "task": self.task,
            "dim": self.dim,
            "max_length": self.max_length,
        }


@hookimpl
def register_anchors(register):
    register(
        "qwen3", Qwen3Anchor, license="Apache-2.0",
        description="Qwen3-Embedding 0.6B/4B/8B (instruction-prefixed queries, last-token "
        "pooling, optional Matryoshka dim); Hub id or local folder",
    )
