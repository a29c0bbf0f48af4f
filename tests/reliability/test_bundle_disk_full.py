"""A full disk (or any write error) during a save leaves the old bundle untouched."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tree

import textme_sdk as tm
from textme_sdk import bundle as bundle_mod

CHILD = Path(__file__).with_name("disk_full_child.py")


@pytest.mark.parametrize("fail_at", [0, 2, 4])
def test_a_write_error_is_typed_and_leaves_the_old_bundle(bundle, tmp_path, monkeypatch, fail_at):
    (bundle / "notes.txt").write_text("mine\n")
    before = tree(bundle)
    write = bundle_mod._write_bytes
    calls = []

    def fill_up(path, data):
        calls.append(path)
        if len(calls) > fail_at:
            write(path, data[: len(data) // 2])  # part of the file reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, data)

    monkeypatch.setattr(bundle_mod, "_write_bytes", fill_up)
    model = tm.TextME.from_pretrained(bundle)
    with pytest.raises(tm.BundleWriteError, match="No space left on device; free disk space and "
                       "save again; the previous bundle at .* is unchanged") as err:
        model.save_pretrained(bundle)
    assert isinstance(err.value, OSError) and err.value.__cause__.errno == errno.ENOSPC
    assert "\n" not in str(err.value)
    assert tree(bundle) == before
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_an_unwritable_parent_is_a_typed_error(model, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(bundle_mod.tempfile, "mkdtemp", denied)
    with pytest.raises(tm.BundleWriteError, match="Permission denied; choose a writable folder"):
        model.save_pretrained(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def _private_tmpfs_works() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _private_tmpfs_works(),
                    reason="needs unshare and mount in a private user namespace (a real full disk)")
def test_a_really_full_disk(gapdemo_site, tmp_path):
    root = tmp_path / "small-disk"
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(gapdemo_site), str(CHILD.parent)]),
           "OMP_NUM_THREADS": "1"}
    script = f'mount -t tmpfs -o size=512k tmpfs "{root}" && exec "{sys.executable}" "{CHILD}" "{root}"'
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["free_before"] < 2 << 20  # the 3.3 MB bundle cannot fit
    err = out["error"]
    assert err and err["is_bundle_write_error"] and err["cause_errno"] == errno.ENOSPC, err
    assert "free disk space" in err["message"] and "is unchanged" in err["message"]
    assert out["intact"] and out["listing"] == ["b"] and out["loads"] == 1 and out["saved_again"]


def test_a_failed_rename_without_the_atomic_swap_puts_the_old_bundle_back(bundle, tmp_path,
                                                                          monkeypatch):
    before = tree(bundle)
    model = tm.TextME.from_pretrained(bundle)
    monkeypatch.setattr(bundle_mod, "_exchange", lambda a, b: False)
    rename = os.rename

    def failing(src, dst):
        if Path(dst) == bundle and ".textme-new-" in str(src):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return rename(src, dst)

    monkeypatch.setattr(bundle_mod.os, "rename", failing)
    with pytest.raises(tm.BundleWriteError, match="Input/output error; check the folder and the "
                       "disk and save again; the previous bundle at .* is unchanged"):
        model.save_pretrained(bundle)
    assert tree(bundle) == before
    assert sorted(os.listdir(tmp_path)) == ["b"]
