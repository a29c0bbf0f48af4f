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
def plugin_site(tmp_path_factory):
    """``plugin_site("textme-NAME")``: that fixture plugin, installed once per session."""
    sites: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in sites:
            sites[name] = install_fixture_plugin(name, tmp_path_factory)
        return sites[name]

    return get


@pytest.fixture(scope="session")
def gapdemo_site(plugin_site) -> Path:
    """``textme-gapdemo``: an external plugin in the batch-method style."""
    return plugin_site("textme-gapdemo")


@pytest.fixture(scope="session")
def glyph_site(plugin_site) -> Path:
    """``textme-glyph``: an external plugin overriding the public methods."""
    return plugin_site("textme-glyph")


@pytest.fixture
def gapdemo(gapdemo_site, monkeypatch):
    """Make ``textme-gapdemo`` importable and rediscover plugins; undone after the test."""
    yield from _activate(gapdemo_site, "textme_gapdemo", monkeypatch)


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
