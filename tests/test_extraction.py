"""Text-embedding extraction: cache keys shared with training, resume, sharding, torchrun."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import textme_sdk as tm
from textme_sdk.engine import EmbeddingCache, content_key
from textme_sdk.errors import EmptyInputError, InvalidInputError
from textme_sdk.extraction import (
    DistributedContext,
    cache_key,
    distributed_context,
    extract_text_embeddings,
)
from textme_sdk.training import anchor_embeddings


class ToyAnchor(tm.AnchorModel):
    """Deterministic, records every text it embeds (thread-safe)."""

    name = "toy"
    embedding_dim = 8
    config_exclude = ("device", "dtype", "fail_on")  # a crash switch is not part of the model

    def __init__(self, device=None, fail_on: str | None = None):
        super().__init__(device)
        self.seen: list[str] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def load_model(self, device, dtype):
        pass

    def encode_batch(self, texts, role):
        with self.lock:
            self.seen.extend(texts)
        if self.fail_on in texts:
            raise RuntimeError("simulated crash")
        seeds = [int(hashlib.sha256(f"{role}|{t}".encode()).hexdigest()[:8], 16) for t in texts]
        return torch.stack([torch.randn(8, generator=torch.Generator().manual_seed(s)) for s in seeds])


TEXTS = [f"description number {i}" for i in range(23)]


def test_key_is_the_one_training_looks_up(tmp_path):
    anchor = ToyAnchor()
    out = extract_text_embeddings(anchor, TEXTS, cache=tmp_path, chunk_size=5)
    assert out.shape == (23, 8) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(23), atol=2e-3)  # float16 storage
    fresh = ToyAnchor()
    again = anchor_embeddings(fresh, TEXTS, "document", cache=tmp_path)
    assert fresh.seen == [] and torch.equal(again, out)  # training never embeds again
    assert cache_key(anchor, "query") != cache_key(anchor, "document")
    enc_key = cache_key(tm.get_encoder("ref-image"), "query")
    assert enc_key["kind"] == "encoder-text" and "role" not in enc_key


def test_interrupted_extraction_resumes_from_finished_chunks(tmp_path):
    crashing = ToyAnchor(fail_on=TEXTS[12])
    with pytest.raises(tm.EncoderError, match=r"anchor 'toy'.*positions 0, 1, 2, 3, 4 "
                                              r"\(RuntimeError: simulated crash\)") as info:
        extract_text_embeddings(crashing, TEXTS, cache=tmp_path, chunk_size=5, batch_size=5)
    assert isinstance(info.value.__cause__, RuntimeError)  # chained to the plugin's error
    resumed = ToyAnchor()
    out = extract_text_embeddings(resumed, TEXTS, cache=tmp_path, chunk_size=5, batch_size=5)
    assert sorted(resumed.seen) == sorted(TEXTS[10:])  # chunks 0 and 1 were kept
    clean = extract_text_embeddings(ToyAnchor(), TEXTS, cache=tmp_path / "clean", chunk_size=5)
    assert torch.equal(out, clean)


def test_two_shards_compute_disjoint_chunks_and_merge_to_the_single_process_entry(tmp_path):
    barrier = threading.Barrier(2, timeout=30)
    anchors = [ToyAnchor(), ToyAnchor()]
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def run(rank: int) -> None:
        try:
            ctx = DistributedContext(rank, 2, rank, barrier.wait)
            results[rank] = extract_text_embeddings(anchors[rank], TEXTS, cache=tmp_path / "shared",
                                                    chunk_size=5, batch_size=5, context=ctx)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # rank 0 embeds chunks 0, 2, 4 and rank 1 chunks 1, 3: every text exactly once
    assert anchors[0].seen == TEXTS[0:5] + TEXTS[10:15] + TEXTS[20:23]
    assert anchors[1].seen == TEXTS[5:10] + TEXTS[15:20]
    single = extract_text_embeddings(ToyAnchor(), TEXTS, cache=tmp_path / "single", chunk_size=5)
    assert torch.equal(results[0], single) and torch.equal(results[1], single)
    shared = list((tmp_path / "shared").rglob("*"))
    assert not [p for p in shared if ".partial" in p.name]  # chunk folders cleaned up


def test_bad_arguments_raise_typed_errors(tmp_path):
    with pytest.raises(EmptyInputError):
        extract_text_embeddings(ToyAnchor(), [], cache=tmp_path)
    with pytest.raises(InvalidInputError, match="role"):
        extract_text_embeddings(ToyAnchor(), TEXTS, role="passage", cache=tmp_path)
    with pytest.raises(InvalidInputError, match="AnchorModel or a ModalityEncoder"):
        extract_text_embeddings(object(), TEXTS, cache=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="barrier"):
        EmbeddingCache(tmp_path).get_or_compute({"m": 1}, TEXTS, lambda t: torch.ones(len(t), 2),
                                                rank=0, world_size=2)


def test_distributed_context_reads_the_launcher_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed_context()
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True)
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert ctx.device() == expected
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(InvalidInputError, match="no process group"):
        distributed_context(init=False)


def _cli_env(home) -> dict[str, str]:
    env = dict(os.environ, TEXTME_HOME=str(home), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("WORLD_SIZE", None)
    return env


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
    # on a machine without CUDA, Accelerate's multi-process launcher starts 2 CPU processes and
    # the extraction joins them with gloo
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                   "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                   "--dynamo_backend", "no"],
}


@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_two_launched_processes_equal_one_process(tmp_path, launcher):
    """The real thing: `torchrun` / `accelerate launch` with 2 processes running
    `-m textme_sdk.cli embed-texts` (gloo on CPU), against one plain process."""
    if launcher == "accelerate":
        pytest.importorskip("accelerate")
        if torch.cuda.is_available():
            pytest.skip("the accelerate case checks the CPU fallback")
    texts = tmp_path / "texts.txt"
    corpus = [f"a short caption about thing {i}" for i in range(37)]
    texts.write_text("\n".join(corpus))
    common = ["embed-texts", str(texts), "--anchor", "minilm", "--chunk-size", "8", "--batch-size", "4"]
    two = subprocess.run(
        [*LAUNCHERS[launcher], "-m", "textme_sdk.cli", *common, "--out", str(tmp_path / "two.npy")],
        env=_cli_env(tmp_path / "two"), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes" in two.stdout
    one = subprocess.run([sys.executable, "-m", "textme_sdk.cli", *common,
                          "--out", str(tmp_path / "one.npy")],
                         env=_cli_env(tmp_path / "one"), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    entries = {}
    for run in ("one", "two"):
        files = list((tmp_path / run / "embeddings").rglob("*.safetensors"))
        assert len(files) == 1, files  # one merged entry, no chunk leftovers
        entries[run] = files[0]
    assert entries["one"].name == entries["two"].name  # same content key
    a, b = (load_file(str(entries[r]))["embeddings"] for r in ("one", "two"))
    # one process vs two: other thread counts per process may change BLAS rounding
    assert a.shape == (37, 384)
    torch.testing.assert_close(a, b, atol=1e-3, rtol=0)  # fp16 cache entries: ~1 ulp
    np.testing.assert_allclose(np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy"),
                               atol=1e-3, rtol=0)
    key = content_key(cache_key(tm.get_anchor("minilm"), "document"), corpus)
    assert entries["one"].name == f"{key}.safetensors"  # what train_projector looks up


def test_cli_needs_exactly_one_model(tmp_path):
    from typer.testing import CliRunner

    from textme_sdk.cli import app

    (tmp_path / "t.txt").write_text("one\ntwo\n")
    res = CliRunner().invoke(app, ["embed-texts", str(tmp_path / "t.txt")])
    assert res.exit_code != 0 and "exactly one of --anchor" in res.output
