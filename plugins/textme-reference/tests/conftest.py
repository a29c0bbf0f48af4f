"""Tests of the reference world never touch the network and write only to temporary caches."""

from __future__ import annotations

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TEXTME_HOME", tempfile.mkdtemp(prefix="textme-home-"))
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="textme-hf-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))
