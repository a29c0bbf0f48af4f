"""Trains a projector or extracts text embeddings, to be killed by SIGKILL (test_kill9.py).

    python kill_child.py train WORKDIR      # fit_projector with a checkpoint every step
    python kill_child.py extract WORKDIR    # extract_text_embeddings in chunks of 8 texts

Both resume from WORKDIR when run again and write WORKDIR/result.safetensors when done.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from safetensors.torch import save_file  # noqa: E402

import textme_sdk as tm  # noqa: E402
from textme_sdk.engine import TrainConfig, fit_projector  # noqa: E402
from textme_sdk.extraction import extract_text_embeddings  # noqa: E402

TEXTS = [f"a text about thing number {i}" for i in range(96)]


class SlowAnchor(tm.AnchorModel):
    """Deterministic per text, and slow enough to be killed in the middle of a run."""

    name, embedding_dim = "slow", 8

    def load_model(self, device, dtype):
        pass

    def encode_batch(self, texts, role):
        time.sleep(0.05)
        rows = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            rows.append(torch.randn(8, generator=torch.Generator().manual_seed(seed)))
        return torch.stack(rows)


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    return x, torch.nn.functional.normalize(x @ torch.randn(16, 12, generator=g), dim=1)


def main(mode: str, work: Path) -> None:
    if mode == "train":
        x, y = data()
        cfg = TrainConfig(epochs=20, batch_size=32, checkpoint_every=1, seed=0)
        result = fit_projector(x, y, cfg, checkpoint_dir=work / "ckpt", resume=True,
                               show_progress_bar=False)
        out = {f"w.{k}": v.contiguous() for k, v in result.projector.state_dict().items()}
    else:
        emb = extract_text_embeddings(SlowAnchor(), TEXTS, cache=work / "cache", chunk_size=8,
                                      batch_size=4, show_progress_bar=False)
        out = {"embeddings": emb.contiguous()}
    save_file(out, str(work / "result.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
