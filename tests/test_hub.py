"""push_to_hub / from_pretrained against a local Hub look-alike: the real client code runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import textme_sdk as tm


@pytest.fixture
def two_modal_model(gapdemo, minilm):
    torch.manual_seed(0)
    model = tm.TextME(minilm)
    for name, seed in (("a", 0), ("b", 1)):
        enc = tm.get_encoder("gapdemo", dim=16, seed=seed)
        model.add_modality(enc, tm.Projector(16, 384), tm.Offsets.from_embeddings(
            torch.randn(8, 16), torch.randn(8, 16)), name=name)
    return model


def test_push_is_one_commit_and_pull_roundtrips(fake_hub, two_modal_model):
    url = two_modal_model.push_to_hub("org/bundle", token="t")
    assert "org/bundle" in url
    assert len(fake_hub.calls("POST", r"/commit/")) == 1
    loaded = tm.TextME.from_pretrained("org/bundle")
    assert loaded.modalities == ["a", "b"]
    x = ["dog#1"]
    np.testing.assert_allclose(loaded.embed(x, modality="b"), two_modal_model.embed(x, modality="b"),
                               atol=1e-6)


def test_only_requested_modalities_are_downloaded(fake_hub, two_modal_model, tmp_path):
    two_modal_model.push_to_hub("org/bundle")
    before = len(fake_hub.requests)
    model = tm.TextME.from_pretrained("org/bundle", modalities=["a"], cache_dir=tmp_path / "c")
    assert model.modalities == ["a"]
    fetched = [p for m, p in fake_hub.requests[before:] if m == "GET" and "/resolve/" in p]
    assert any("modalities/a/projector.safetensors" in p for p in fetched)
    assert not any("modalities/b/" in p for p in fetched)
    assert not list((tmp_path / "c").rglob("modalities/b"))


def test_existing_readme_is_never_overwritten(fake_hub, two_modal_model):
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    api.create_repo("org/carded")
    api.upload_file(path_or_fileobj=b"# Hand-written card\n", path_in_repo="README.md",
                    repo_id="org/carded")
    two_modal_model.push_to_hub("org/carded")
    assert open(hf_hub_download("org/carded", "README.md")).read() == "# Hand-written card\n"
    assert api.file_exists("org/carded", "modalities/a/projector.safetensors")


def test_generated_card_is_refreshed_and_revisions_pin(fake_hub, two_modal_model, gapdemo):
    from huggingface_hub import HfApi

    two_modal_model.push_to_hub("org/bundle")
    first = HfApi().model_info("org/bundle").sha
    enc = tm.get_encoder("gapdemo", dim=16, seed=5)
    two_modal_model.add_modality(enc, tm.Projector(16, 384), tm.Offsets.zeros(16), name="c")
    two_modal_model.push_to_hub("org/bundle")
    assert tm.TextME.from_pretrained("org/bundle").modalities == ["a", "b", "c"]
    assert tm.TextME.from_pretrained("org/bundle", revision=first).modalities == ["a", "b"]


def test_offline_mode_is_honoured(fake_hub, two_modal_model, monkeypatch, tmp_path):
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    two_modal_model.push_to_hub("org/bundle")
    tm.TextME.from_pretrained("org/bundle", cache_dir=tmp_path / "c")  # fills the cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    n = len(fake_hub.requests)
    assert tm.TextME.from_pretrained("org/bundle", cache_dir=tmp_path / "c").modalities == ["a", "b"]
    assert len(fake_hub.requests) == n  # served from the cache
    with pytest.raises(tm.MissingFileError, match="not in the local Hugging Face cache") as info:
        tm.TextME.from_pretrained("org/never-downloaded", cache_dir=tmp_path / "c")
    assert isinstance(info.value.__cause__, LocalEntryNotFoundError)
    assert tm.TextME.from_pretrained("org/bundle", cache_dir=tmp_path / "c",
                                     local_files_only=True).modalities == ["a", "b"]


def test_unknown_repo(fake_hub):
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(tm.MissingFileError, match="no bundle 'org/missing'") as info:
        tm.TextME.from_pretrained("org/missing")
    assert isinstance(info.value.__cause__, RepositoryNotFoundError)


def test_local_paths_that_are_not_bundles_never_reach_the_hub(fake_hub, tmp_path):
    n = len(fake_hub.requests)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(tm.MissingFileError, match="is a file, not a bundle folder"):
        tm.TextME.from_pretrained(tmp_path / "file.txt")
    with pytest.raises(tm.MissingFileError, match="no bundle folder at"):
        tm.TextME.from_pretrained(tmp_path / "nowhere" / "bundle")
    with pytest.raises(tm.InvalidInputError, match="neither a bundle folder nor a Hub repository"):
        tm.TextME.from_pretrained("bad id with spaces")
    assert len(fake_hub.requests) == n
