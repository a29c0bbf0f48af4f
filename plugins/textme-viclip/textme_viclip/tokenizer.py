"""ViCLIP's text tokenizer: OpenAI CLIP's byte-level BPE with a context of 32 tokens.

Upstream (``viclip/simple_tokenizer.py`` + ``CLIP_TEXT.tokenize``) is OpenAI's CLIP tokenizer
with the same ``bpe_simple_vocab_16e6.txt.gz`` that open_clip ships inside its wheel, so this
works offline. Two details are aligned with upstream rather than with open_clip:

* the special tokens are spelled ``<|startoftext|>`` / ``<|endoftext|>`` (ids 49406 / 49407),
  and those literal strings inside a text become the special tokens, as upstream;
* truncation keeps the first ``context_length`` tokens and overwrites the last with
  end-of-text (open_clip and upstream agree on this).
"""

from __future__ import annotations

import torch

__all__ = ["EOT_TOKEN", "SOT_TOKEN", "ViCLIPTokenizer"]

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
# Upstream's split pattern: the two special tokens, English contractions, letter runs, single
# digits, and runs of other non-space characters.
_PATTERN = (r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"
            r"|[^\s\p{L}\p{N}]+")


class ViCLIPTokenizer:
    """Tokenize texts into ``[N, context_length]`` int64 ids, zero-padded.

    Args:
        context_length: tokens per text including start and end tokens (ViCLIP: 32).
    """

    def __init__(self, context_length: int = 32):
        import regex
        from open_clip.tokenizer import SimpleTokenizer

        if context_length < 2:
            raise ValueError(f"context_length must be >= 2, got {context_length}")
        bpe = SimpleTokenizer(context_length=context_length, clean="lower")
        self.sot_id, self.eot_id = bpe.sot_token_id, bpe.eot_token_id
        # Same ids, upstream spelling: these strings in a text map to the special tokens.
        for text, idx in ((SOT_TOKEN, self.sot_id), (EOT_TOKEN, self.eot_id)):
            bpe.encoder[text] = idx
            bpe.cache[text] = text
        bpe.pat = regex.compile(_PATTERN, regex.IGNORECASE)
        self._bpe = bpe
        self.context_length = context_length
        self.vocab_size = len(bpe.decoder)

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without start/end tokens (cleaned with ftfy, lower-cased)."""
        return self._bpe.encode(text)

    def decode(self, ids: list[int]) -> str:
        """Text of a list of ids (special tokens spelled as open_clip does)."""
        return self._bpe.decode(ids)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """``[len(texts), context_length]`` ids: ``SOT text EOT 0 0 ...``, truncated with EOT."""
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_id
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def token_count(self, text: str) -> int:
        """Tokens the text occupies (with start/end), capped at ``context_length``."""
        return min(len(self.encode(text)) + 2, self.context_length)
