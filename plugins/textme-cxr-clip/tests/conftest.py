"""Fixtures shared by the cxr_clip tests: offline Hugging Face settings and a tiny WordPiece
tokenizer folder (BioClinicalBERT's layout) that the tiny architectures name."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from cxr_testlib import write_tokenizer


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    return write_tokenizer(tmp_path_factory.mktemp("tokenizer"))
