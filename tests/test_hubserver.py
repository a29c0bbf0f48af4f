"""End-to-end tests of the real huggingface_hub client against the FakeHub test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.torch import load_file, save_file

from hubserver import FakeHub, fake_hub  # noqa: F401  (fixture)

REPO = "tester/bridge"
COMMIT_RE = r"^/api/models/tester/bridge/commit/main$"


def _make_folder(root: Path, version: int = 1) -> Path:
    """README.md, config.json and two projector.safetensors (~4 KB and ~1 MB) under modalities/."""
    (root / "modalities" / "a").mkdir(parents=True)
    (root / "modalities" / "b").mkdir(parents=True)
    (root / "README.md").write_text(f"# bridge v{version}\n")
    (root / "config.json").write_text(json.dumps({"version": version}))
    for sub, n in (("a", 32), ("b", 512)):  # 4 KB and 1 MB of float32
        weights = {"w": torch.full((n, n), float(version))}
        save_file(weights, str(root / "modalities" / sub / "projector.safetensors"))
    return root


def _push(api: HfApi, folder: Path, message: str = "push") -> str:
    api.create_repo(REPO, exist_ok=True, private=True)
    return api.upload_folder(repo_id=REPO, folder_path=folder, commit_message=message).oid


def test_create_repo_and_exists(fake_hub: FakeHub) -> None:
    api = HfApi(endpoint=fake_hub.url, token="x")
    url = api.create_repo(REPO, private=True)
    assert url.repo_id == REPO
    api.create_repo(REPO, exist_ok=True)  # 409 tolerated
    assert api.repo_exists(REPO)
    assert not api.repo_exists("tester/nope")
    info = api.model_info(REPO)
    assert info.private is True and info.siblings == [] and len(info.sha or "") == 40


def test_upload_folder_is_one_commit(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=fake_hub.url, token="x")
    oid = _push(api, _make_folder(tmp_path / "src"))
    assert len(fake_hub.calls("POST", COMMIT_RE)) == 1
    assert fake_hub.calls("PUT", ".") == []  # nothing went through LFS/Xet
    expected = [
        "README.md",
        "config.json",
        "modalities/a/projector.safetensors",
        "modalities/b/projector.safetensors",
    ]
    assert sorted(api.list_repo_files(REPO)) == expected
    info = api.repo_info(REPO)
    assert info.sha == oid and sorted(s.rfilename for s in info.siblings or []) == expected
    assert api.file_exists(REPO, "modalities/b/projector.safetensors")
    assert not api.file_exists(REPO, "modalities/c/projector.safetensors")
    assert not api.file_exists("tester/nope", "config.json")


def test_module_level_helpers_use_fixture_endpoint(fake_hub: FakeHub, tmp_path: Path) -> None:
    """Without endpoint=, the fixture's constants make the default client reach the fake hub too."""
    import huggingface_hub

    _push(HfApi(token="x"), _make_folder(tmp_path / "src"))
    assert huggingface_hub.file_exists(REPO, "config.json")
    path = hf_hub_download(REPO, "config.json")  # default cache = fixture's tmp cache
    assert json.loads(Path(path).read_text()) == {"version": 1}
    assert str(tmp_path) in path


def test_snapshot_download_only_allowed_files(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=fake_hub.url, token="x")
    _push(api, _make_folder(tmp_path / "src"))
    fake_hub.requests.clear()
    folder = Path(
        snapshot_download(
            REPO,
            allow_patterns=["config.json", "modalities/a/*"],
            revision="main",
            endpoint=fake_hub.url,
            cache_dir=tmp_path / "cache",
        )
    )
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert on_disk == ["config.json", "modalities/a/projector.safetensors"]
    # snapshot_download resolves "main" to the head sha first, then fetches each file at that sha.
    gets = fake_hub.calls("GET", "/resolve/")
    fetched = sorted(p.split("/resolve/")[1].split("/", 1)[1] for p in gets)
    assert fetched == ["config.json", "modalities/a/projector.safetensors"]
    assert load_file(str(folder / "modalities/a/projector.safetensors"))["w"].shape == (32, 32)


def test_missing_file_repo_and_revision_errors(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=fake_hub.url, token="x")
    _push(api, _make_folder(tmp_path / "src"))
    kw = {"endpoint": fake_hub.url, "cache_dir": tmp_path / "cache"}
    with pytest.raises(RemoteEntryNotFoundError) as excinfo:
        hf_hub_download(REPO, "missing.json", **kw)
    assert isinstance(excinfo.value, EntryNotFoundError)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/nope", "config.json", **kw)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("tester/nope")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("tester/nope", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="0" * 40, **kw)


def test_second_push_and_download_at_old_sha(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=fake_hub.url, token="x")
    first = _push(api, _make_folder(tmp_path / "v1", 1), "v1")
    second = _push(api, _make_folder(tmp_path / "v2", 2), "v2")
    assert first != second and len(fake_hub.calls("POST", COMMIT_RE)) == 2
    assert [c.oid for c in fake_hub.repo(REPO).commits[1:]] == [first, second]
    kw = {"endpoint": fake_hub.url, "cache_dir": tmp_path / "cache"}
    old = hf_hub_download(REPO, "config.json", revision=first, **kw)
    new = hf_hub_download(REPO, "config.json", revision="main", **kw)
    assert json.loads(Path(old).read_text()) == {"version": 1}
    assert json.loads(Path(new).read_text()) == {"version": 2}
    old_b = hf_hub_download(REPO, "modalities/b/projector.safetensors", revision=first, **kw)
    assert float(load_file(old_b)["w"][0, 0]) == 1.0
    snap = Path(snapshot_download(REPO, revision=first, allow_patterns=["modalities/*"], **kw))
    assert snap.name == first
    assert float(load_file(str(snap / "modalities/a/projector.safetensors"))["w"][0, 0]) == 1.0
    # Re-pushing identical content: preupload reports the remote oids, so the client skips the
    # commit entirely (no request, returns the current head).
    third = _push(api, _make_folder(tmp_path / "v2bis", 2), "same")
    assert third == second and len(fake_hub.calls("POST", COMMIT_RE)) == 2
