"""MoleculeSTM's text branch: SciBERT (fine-tuned weights from ``text_model.pth``) ->
``pooler_output`` -> ``text2latent``.

Upstream (``scripts/downstream_01_retrieval_*.py``, ``MoleculeSTM/utils.py``) builds
``AutoModel.from_pretrained('allenai/scibert_scivocab_uncased')``, overwrites every weight with
``text_model.pth``, tokenises with truncation to 512 tokens (padded to 512, mask as bool),
calls the model with ``input_ids`` and ``attention_mask`` only, and projects
``pooler_output`` (tanh(dense(h_CLS))) with ``text2latent``. Here the architecture is built
from SciBERT's ``config.json`` written out below (nothing is downloaded for it); padding is to
the longest text of the batch, which gives the same output as padding to 512 since padded
positions are masked out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from textme_sdk import errors
from textme_sdk.encoders import check_tokenizer as _check

from .checkpoints import MoleculeSTMLoadError

__all__ = [
    "SCIBERT",
    "SCIBERT_CONFIG",
    "TEXT_MAX_TOKENS",
    "TextTower",
    "TokenizerError",
    "check_tokenizer",
    "load_tokenizer",
]

#: The tokenizer (and base architecture) of MoleculeSTM's text branch.
SCIBERT = "allenai/scibert_scivocab_uncased"
#: ``config.json`` of ``allenai/scibert_scivocab_uncased`` (a BERT-base with SciVocab).
SCIBERT_CONFIG: dict[str, Any] = {
    "vocab_size": 31090, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
    "layer_norm_eps": 1e-12, "pad_token_id": 0,
}
#: Upstream ``--max_seq_len``.
TEXT_MAX_TOKENS = 512
_PROBE = "the molecule is an aromatic carboxylic acid with an amino group"


class TokenizerError(MoleculeSTMLoadError, errors.TokenizerError):
    """The text tokenizer is missing or silently useless."""


class TextTower(nn.Module):
    """``text2latent(BertModel(ids, mask).pooler_output)``.

    Args:
        text_config: ``BertConfig`` values (default :data:`SCIBERT_CONFIG`).
        latent_dim: output size of ``text2latent`` (256 upstream).
    """

    def __init__(self, text_config: dict[str, Any], latent_dim: int):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.text_model = BertModel(BertConfig(**text_config), add_pooling_layer=True)
        self.text2latent = nn.Linear(self.text_model.config.hidden_size, latent_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return self.text2latent(out.pooler_output)


def load_tokenizer(name_or_path: str, cache_dir: str | None = None) -> Any:
    """``AutoTokenizer.from_pretrained`` with a clear error instead of a traceback.

    Raises:
        TokenizerError: not found (offline without a cached copy, wrong name or folder).
    """
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path, cache_dir=cache_dir)
    except (OSError, ValueError) as exc:
        raise TokenizerError(
            f"could not load the tokenizer {name_or_path!r} ({type(exc).__name__}: {exc}). "
            f"When offline {SCIBERT!r} must already be in the Hugging Face cache; or pass "
            "tokenizer=<local folder>"
        ) from exc


def check_tokenizer(tokenizer: Any, vocab_rows: int, what: str) -> None:
    """Refuse tokenizers that would give silently wrong embeddings.

    transformers 5 returns a 5-token ``BertTokenizer`` for a Hub name it cannot reach offline;
    every word then becomes ``[UNK]``. Token ids beyond the embedding table are refused too.

    Raises:
        TokenizerError: a tiny vocabulary, a probe sentence of unknown tokens only, or more
            tokens than the text model embeds.
    """
    _check(tokenizer, vocab_rows, what, _PROBE, error=TokenizerError, expected="SciBERT's tokenizer",
           mismatch_hint=f" (MoleculeSTM uses {SCIBERT!r})")
