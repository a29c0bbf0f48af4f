"""Saves bundles over existing ones and dies at chosen moments (run by test_bundle_crash.py).

    python crash_child.py WORKDIR SEED,SEED,...

Bundle A, with files a user added to its folder, is saved to WORKDIR/template/b; every trial
copies that folder and saves bundle B over the copy in a forked process that dies by SIGKILL:

* ``steps-*``: just before its k-th file-system operation (write, rename, exchange, link,
  unlink, rmdir), for k = 0, 1, ... until a save completes;
* ``random-*``: per seed, after a random delay, while it saves B and A over each other in a loop;

each with the atomic exchange (``*-exchange``) and with the two-rename fallback of systems
without it (``*-fallback``). Each trial leaves WORKDIR/<trial>/b and its siblings as the kill
left them; the bundles' weight hashes and the trials go to WORKDIR/result.json.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)  # no thread pool, so that fork() is safe

import textme_sdk as tm  # noqa: E402
from textme_sdk import bundle as bundle_mod  # noqa: E402
from textme_sdk.encoders import AnchorModel  # noqa: E402


class StubAnchor(AnchorModel):
    """Stands in for MiniLM (384-d): saving needs only the anchor's name, dimension and config."""

    name = "minilm"
    embedding_dim = 384

    def load_model(self, device, dtype):  # never called: nothing is embedded here
        raise AssertionError("not used")

    def encode_batch(self, texts, role):
        raise AssertionError("not used")


def build(seed: int) -> tm.TextME:
    torch.manual_seed(seed)
    model = tm.TextME(StubAnchor(), device="cpu")
    for name in ("gapdemo", "second"):
        enc = tm.get_encoder("gapdemo", dim=16, seed=seed)
        model.add_modality(enc, tm.Projector(16, 384, hidden_dim=256),
                           tm.Offsets.from_embeddings(torch.randn(20, 16), torch.randn(20, 16)),
                           name=name)
    return model


USER_FILES = {"notes.txt": b"my notes\n", "sub/data.csv": b"a,b\n1,2\n"}


def template(work: Path, model: tm.TextME) -> Path:
    """Bundle A with the user's own files added to its folder."""
    dest = model.save_pretrained(work / "template" / "b")
    for rel, data in USER_FILES.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    return dest


def die_at_step(k: int) -> None:
    """Make this process SIGKILL itself just before its k-th file-system operation."""
    count = [0]

    def wrap(fn):
        def inner(*args, **kwargs):
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            count[0] += 1
            return fn(*args, **kwargs)
        return inner

    for name in ("rename", "replace", "link", "unlink", "rmdir"):
        setattr(os, name, wrap(getattr(os, name)))
    for name in ("_write_bytes", "_exchange"):
        setattr(bundle_mod, name, wrap(getattr(bundle_mod, name)))


def run(work: Path, scenario: str, seeds: list[int], a: tm.TextME, b: tm.TextME,
        original: Path, save_seconds: float) -> list[dict]:
    trials = []
    exchange = bundle_mod._exchange
    if scenario.endswith("fallback"):
        bundle_mod._exchange = lambda x, y: False  # as on a system without RENAME_EXCHANGE
    try:
        for k in (seeds if scenario.startswith("random") else range(500)):
            trial = work / f"{scenario}-{k:03d}"
            shutil.copytree(original.parent, trial, symlinks=True)
            dest = trial / original.name
            pid = os.fork()
            if pid == 0:
                if scenario.startswith("random"):
                    while True:
                        b.save_pretrained(dest)
                        a.save_pretrained(dest)
                die_at_step(k)
                b.save_pretrained(dest)
                os._exit(0)
            if scenario.startswith("random"):
                time.sleep(random.Random(k).uniform(0.0, 4 * save_seconds))
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            killed = os.WIFSIGNALED(status)
            trials.append({"scenario": scenario, "trial": trial.name, "k": k, "killed": killed})
            if not killed:
                break
    finally:
        bundle_mod._exchange = exchange
    return trials


def main() -> None:
    work, seeds = Path(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")]
    # fsync guards against power loss, not against a killed process (the kernel keeps what a
    # dead process wrote); skipping it here only makes the trials faster
    os.fsync = lambda fd: None
    a, b = build(0), build(1)
    hashes = {}
    for label, model in (("A", a), ("B", b)):
        probe = model.save_pretrained(work / f"probe-{label}")
        hashes[label] = json.loads((probe / "modalities/gapdemo/config.json").read_text())["sha256"]
        shutil.rmtree(probe)
    original = template(work, a)
    t0 = time.perf_counter()
    a.save_pretrained(original)
    save_seconds = time.perf_counter() - t0
    trials = []
    for scenario in ("steps-exchange", "steps-fallback", "random-exchange", "random-fallback"):
        trials += run(work, scenario, seeds, a, b, original, save_seconds)
    (work / "result.json").write_text(json.dumps(
        {"hashes": hashes, "save_seconds": save_seconds, "trials": trials}, indent=1))


if __name__ == "__main__":
    main()
