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


def install_fixture_plugin(name: str, tmp_path_factory) -> Path:
    """pip-install the test plugin ``tests/fixtures/NAME`` into a private folder.

    It is a real distribution with an entry point in group ``textme``; putting the folder on
    ``sys.path`` makes it discoverable exactly as an installed plugin is.
    """
    target = tmp_path_factory.mktemp(f"{name}-site")
    build = tmp_path_factory.mktemp(f"{name}-build")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(FIXTURES / name)],
        check=True, cwd=build, env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    return target


def _activate(site: Path, module: str, monkeypatch):
    import textme_sdk

    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("TEXTME_LOAD_PLUGINS", raising=False)
    textme_sdk.reload_plugins()
    yield site
    sys.modules.pop(module, None)
    monkeypatch.undo()
    textme_sdk.reload_plugins()


@pytest.fixture(scope="session")
def gapdemo_site(tmp_path_factory) -> Path:
    """The external test plugin ``textme-gapdemo`` (batch-method style), installed."""
    return install_fixture_plugin("textme-gapdemo", tmp_path_factory)


@pytest.fixture
def gapdemo(gapdemo_site, monkeypatch):
    """Make the external plugin importable and rediscover plugins; undone after the test."""
    yield from _activate(gapdemo_site, "textme_gapdemo", monkeypatch)


@pytest.fixture(scope="session")
def glyph_site(tmp_path_factory) -> Path:
    """The external test plugin ``textme-glyph`` (public methods overridden), installed."""
    return install_fixture_plugin("textme-glyph", tmp_path_factory)


@pytest.fixture
def glyph(glyph_site, monkeypatch):
    """Make ``textme-glyph`` importable and rediscover plugins; undone after the test."""
    yield from _activate(glyph_site, "textme_glyph", monkeypatch)


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 anchor, loaded once per session."""
    from textme_sdk.builtin.anchors import MiniLMAnchor

    anchor = MiniLMAnchor(device="cpu")
    anchor.load()
    return anchor
