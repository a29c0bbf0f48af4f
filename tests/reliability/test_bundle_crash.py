"""kill -9 at any moment of a save leaves the old or the new bundle; leftovers are cleaned.

A child process (``crash_child.py``) saves bundle B over bundle A (whose folder also holds files
a user added) in forked processes that die by SIGKILL: at every file-system operation of a save
in turn, and after random delays; with the atomic exchange and with the fallback used where the
system has none. Here each trial is then checked: before anything else the path holds a
complete bundle (with the exchange; without it, at worst the path is missing and both complete
copies wait beside it), the next load or save restores and cleans up, the loaded bundle is A or
B, and the user's files are intact.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_model, tree

import textme_sdk as tm
from textme_sdk import bundle as bundle_mod

CHILD = Path(__file__).with_name("crash_child.py")
SEEDS = "1,2,3,4"
USER_FILES = {"notes.txt": b"my notes\n", "sub/data.csv": b"a,b\n1,2\n"}


@pytest.fixture(scope="module")
def crashes(gapdemo_site, tmp_path_factory):
    work = tmp_path_factory.mktemp("crashes")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(gapdemo_site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "TEXTME_LOAD_PLUGINS": "gapdemo"}
    env.pop("TEXTME_LOAD_PLUGINS")
    subprocess.run([sys.executable, str(CHILD), str(work), SEEDS], check=True, env=env, timeout=120)
    return work, json.loads((work / "result.json").read_text())


def _complete(dest: Path) -> bool:
    """A bundle with every weight file matching its recorded hash (read without any recovery)."""
    try:
        cfg = json.loads((dest / "config.json").read_text())
        for m in cfg["modalities"].values():
            mcfg = json.loads((dest / m["path"] / "config.json").read_text())
            for name, sha in mcfg["sha256"].items():
                if hashlib.sha256((dest / m["path"] / name).read_bytes()).hexdigest() != sha:
                    return False
        return bool(cfg["modalities"])
    except (OSError, ValueError, KeyError):
        return False


def _which(dest: Path, hashes: dict) -> str:
    sha = json.loads((dest / "modalities/gapdemo/config.json").read_text())["sha256"]
    return next((label for label, h in hashes.items() if h == sha), "unknown")


@pytest.mark.parametrize("scenario", ["steps-exchange", "steps-fallback", "random-exchange",
                                      "random-fallback"])
def test_a_killed_save_leaves_the_old_or_the_new_bundle(crashes, scenario, gapdemo, minilm):
    work, result = crashes
    trials = [t for t in result["trials"] if t["scenario"] == scenario]
    assert trials and all(t["killed"] for t in trials[:-1] if scenario.startswith("steps"))
    other = make_model(minilm, seed=7)
    seen = collections.Counter()
    for i, t in enumerate(trials):
        folder = work / t["trial"]
        dest = folder / "b"
        leftovers = sorted(p.name for p in folder.iterdir() if p.name != "b")
        if _complete(dest):
            seen["complete at once"] += 1
        else:  # only between the two renames of the fallback
            assert scenario.endswith("fallback") and not dest.exists(), (t, leftovers)
            assert any(".textme-new-" in n for n in leftovers), (t, leftovers)
            seen["restored on load or save"] += 1
        seen.update(n.split(".textme-")[1].split("-")[0] for n in leftovers)
        if i % 2 == 0:  # the next load recovers and cleans up ...
            loaded = tm.TextME.from_pretrained(dest, anchor=minilm)
            assert loaded.modalities == ["gapdemo", "second"]
            state = _which(dest, result["hashes"])
            assert state in ("A", "B"), t
            seen[state] += 1
        else:  # ... and so does the next save
            other.save_pretrained(dest)
            assert tm.TextME.from_pretrained(dest, anchor=minilm).modalities == ["gapdemo"]
        assert os.listdir(folder) == ["b"], (t, os.listdir(folder))
        files = tree(dest)
        assert {k: files.get(k) for k in USER_FILES} == USER_FILES, t
    print(scenario, dict(seen))
    if scenario.startswith("steps"):
        assert seen["A"] and seen["B"]  # kills landed before and after the switch
        assert seen["tmp"] and seen["del"]
    if scenario == "steps-fallback":
        assert seen["restored on load or save"] and seen["new"] and seen["old"]


def _bundle_at(minilm, path, seed=0):
    return make_model(minilm, seed=seed).save_pretrained(path)


def test_leftovers_of_a_live_save_are_not_touched(gapdemo, minilm, tmp_path):
    dest = _bundle_at(minilm, tmp_path / "b")
    live = tmp_path / ".b.textme-tmp-live0001"
    live.mkdir()
    dead = tmp_path / ".b.textme-tmp-dead0001"
    (dead / "modalities").mkdir(parents=True)
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running save holds on its working folder
    try:
        tm.TextME.from_pretrained(dest)
        assert live.exists() and not dead.exists()
    finally:
        os.close(fd)
    tm.TextME.from_pretrained(dest)
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_a_missing_bundle_is_restored_from_the_newest_complete_copy(gapdemo, minilm, tmp_path):
    old = _bundle_at(minilm, tmp_path / "old-copy", seed=1)
    new = _bundle_at(minilm, tmp_path / "new-copy", seed=2)
    want = tree(new)
    os.rename(old, tmp_path / ".b.textme-old-00000001")
    os.rename(new, tmp_path / ".b.textme-new-00000002")
    actions = bundle_mod.recover_interrupted_save(tmp_path / "b")
    assert actions[0].startswith(f"restored {tmp_path / 'b'} from the new copy")
    assert tree(tmp_path / "b") == want
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_complete_copies_are_never_removed_without_a_bundle_at_the_path(gapdemo, minilm, tmp_path):
    new = _bundle_at(minilm, tmp_path / "new-copy", seed=2)
    want = tree(new)
    os.rename(new, tmp_path / ".b.textme-new-00000002")
    (tmp_path / "b").mkdir()  # an empty folder where the bundle was: filled from the copy
    bundle_mod.recover_interrupted_save(tmp_path / "b")
    assert tree(tmp_path / "b") == want and sorted(os.listdir(tmp_path)) == ["b"]
    os.rename(tmp_path / "b", tmp_path / ".b.textme-old-00000003")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mine.txt").write_text("x")  # something else at the path: keep everything
    bundle_mod.recover_interrupted_save(tmp_path / "b")
    assert sorted(os.listdir(tmp_path)) == [".b.textme-old-00000003", "b"]
    # once the path is empty again the old copy fills it; the leftovers of a bundle named
    # "b.textme-tmp-x" are not those of "b" and stay
    (tmp_path / ".b.textme-tmp-x.textme-tmp-abcdefgh").mkdir()
    (tmp_path / "b" / "mine.txt").unlink()
    bundle_mod.recover_interrupted_save(tmp_path / "b")
    assert tree(tmp_path / "b") == want
    assert sorted(os.listdir(tmp_path)) == [".b.textme-tmp-x.textme-tmp-abcdefgh", "b"]


def test_legacy_leftovers_are_restored_removed_or_kept(gapdemo, minilm, tmp_path, caplog):
    # textme-sdk 0.1 renamed the bundle to .NAME.old.XXXXXXXX, then the new one into place
    old = _bundle_at(minilm, tmp_path / ".b.old.abcd1234", seed=1)
    want = tree(old)
    (tmp_path / ".b.zyxw9876" / "modalities" / "gapdemo").mkdir(parents=True)  # its temporary
    (tmp_path / ".b.zyxw9876" / "modalities" / "gapdemo" / "projector.safetensors").write_bytes(b"")
    tm.TextME.from_pretrained(tmp_path / "b")  # missing: restored from the complete copy
    assert tree(tmp_path / "b") == want
    assert sorted(os.listdir(tmp_path)) == ["b"]  # the incomplete one held bundle files only
    partly = _bundle_at(minilm, tmp_path / ".b.old.partly01")
    (partly / "config.json").unlink()  # a half-deleted old copy: bundle files only
    mine = _bundle_at(minilm, tmp_path / ".b.old.thesis01")
    (mine / "thesis.tex").write_text("mine")  # left by the data-loss bug of 0.1: keep it
    tm.TextME.from_pretrained(tmp_path / "b")
    assert not partly.exists() and (mine / "thesis.tex").read_text() == "mine"
    assert "holds files that are not part of a bundle" in caplog.text


def test_recovery_is_harmless_for_hub_ids_and_read_only_folders(gapdemo, minilm, tmp_path,
                                                                 monkeypatch, caplog):
    assert bundle_mod.recover_interrupted_save("org/name-that-is-no-folder") == []
    dest = _bundle_at(minilm, tmp_path / "b")
    (tmp_path / ".b.textme-del-00000001").mkdir()

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bundle_mod.os, "rename", read_only)
    monkeypatch.setattr(bundle_mod.shutil, "rmtree", read_only)
    assert tm.TextME.from_pretrained(dest).modalities == ["gapdemo"]  # loading still works
    assert "could not clean up after an interrupted save" in caplog.text
