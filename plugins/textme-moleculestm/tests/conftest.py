"""Fixtures of the moleculestm tests: a tiny MoleculeSTM-Graph checkpoint folder in the upstream
layout (random weights), a tiny tokenizer folder, and the encoder loaded from them."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from moleculestm_testlib import write_checkpoint_folder, write_tokenizer
from textme_moleculestm import MoleculeSTMEncoder


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_scibert_tokenizer")
    write_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, tokenizer):
    """``(folder, state dicts)`` of a tiny checkpoint with a 5-row chirality table."""
    folder = tmp_path_factory.mktemp("tiny_moleculestm")
    return folder, write_checkpoint_folder(folder, vocab_size=len(tokenizer) + 3)


@pytest.fixture(scope="session")
def tiny_kwargs(checkpoint, tokenizer_dir):
    from moleculestm_testlib import TINY_TEXT_CONFIG

    return {"model": str(checkpoint[0]), "tokenizer": str(tokenizer_dir),
            "text_config": {**TINY_TEXT_CONFIG, "vocab_size": len_vocab(checkpoint)}}


def len_vocab(checkpoint) -> int:
    return int(checkpoint[1]["text_model"]["embeddings.word_embeddings.weight"].shape[0])


@pytest.fixture(scope="session")
def tiny(tiny_kwargs) -> MoleculeSTMEncoder:
    return MoleculeSTMEncoder(**tiny_kwargs, device="cpu").load()
