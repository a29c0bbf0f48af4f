"""Shared fixtures. Tests never touch the network: HF_HUB_OFFLINE is forced on."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TEXTME_HOME", tempfile.mkdtemp(prefix="textme-home-"))
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="textme-hf-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

from hubserver import fake_hub  # noqa: E402,F401  (the local Hub look-alike)


@pytest.fixture(scope="session")
def gapdemo_site(tmp_path_factory) -> Path:
    """The external test plugin ``textme-gapdemo`` pip-installed into a private folder.

    It is a real distribution with an entry point in group ``textme``; putting the folder on
    ``sys.path`` makes it discoverable exactly as an installed plugin is.
    """
    target = tmp_path_factory.mktemp("gapdemo-site")
    build = tmp_path_factory.mktemp("gapdemo-build")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(FIXTURES / "textme-gapdemo")],
        check=True, cwd=build, env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    return target


@pytest.fixture
def gapdemo(gapdemo_site, monkeypatch):
    """Make the external plugin importable and rediscover plugins; undone after the test."""
    import textme_sdk

    monkeypatch.syspath_prepend(str(gapdemo_site))
    monkeypatch.delenv("TEXTME_LOAD_PLUGINS", raising=False)
    textme_sdk.reload_plugins()
    yield gapdemo_site
    sys.modules.pop("textme_gapdemo", None)
    monkeypatch.undo()
    textme_sdk.reload_plugins()


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 anchor, loaded once per session."""
    from textme_sdk.builtin.anchors import MiniLMAnchor

    anchor = MiniLMAnchor(device="cpu")
    anchor.load()
    return anchor
