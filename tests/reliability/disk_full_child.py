"""Fills a small private filesystem while saving over a bundle (run by test_bundle_disk_full.py).

    unshare -rm sh -c 'mount -t tmpfs -o size=512k tmpfs DIR && python disk_full_child.py DIR'

The mount lives in a private mount namespace and disappears with the process, so the checks
run here and their outcome is printed as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from crash_child import StubAnchor

import textme_sdk as tm


def model(hidden: int) -> tm.TextME:
    torch.manual_seed(hidden)
    return tm.TextME(StubAnchor(), device="cpu").add_modality(
        tm.get_encoder("gapdemo", dim=16), tm.Projector(16, 384, hidden_dim=hidden),
        tm.Offsets.from_embeddings(torch.randn(20, 16), torch.randn(20, 16)), name="gapdemo")


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_bytes().hex() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def main() -> None:
    root = Path(sys.argv[1])
    small, big = model(16), model(2048)  # ~30 KB and ~3.3 MB of weights
    dest = small.save_pretrained(root / "b")
    (dest / "notes.txt").write_text("mine\n")
    before = tree(dest)
    out = {"free_before": os.statvfs(root).f_bavail * os.statvfs(root).f_frsize}
    try:
        big.save_pretrained(dest)
        out["error"] = None
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out["error"] = {"type": type(exc).__name__, "message": str(exc),
                        "is_bundle_write_error": isinstance(exc, tm.BundleWriteError),
                        "cause_errno": getattr(exc.__cause__, "errno", None)}
    out["intact"] = tree(dest) == before
    out["listing"] = sorted(os.listdir(root))
    out["loads"] = len(tm.bundle.read_config(dest)["modalities"])
    small.save_pretrained(dest)  # the space was given back: saving still works
    out["saved_again"] = tree(dest).get("notes.txt") == before["notes.txt"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
