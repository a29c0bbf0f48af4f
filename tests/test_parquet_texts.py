"""`.parquet` text files in the project's own environment: pyarrow imports next to the numpy the
other dependencies allow (laion-clap pins numpy < 2; pyarrow 26 needs numpy >= 2, so
constraints.txt caps it), and the CLI reads parquet texts for `textme train` and
`textme embed-texts`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import textme_sdk as tm
from typer.testing import CliRunner

from gapworld import descriptions, modal_samples
from textme_sdk.cli import get_app
from textme_sdk.cli.app import read_texts

runner = CliRunner()


def run(*args):
    res = runner.invoke(get_app(), [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def test_pyarrow_imports_next_to_the_installed_numpy():
    try:
        import pyarrow
    except ImportError as exc:  # e.g. "pyarrow requires NumPy 2.0 or newer, found 1.26.4"
        pytest.fail(f"pyarrow does not import here ({exc}); constraints.txt must pick a pyarrow "
                    f"built for numpy {np.__version__}")
    assert int(pyarrow.__version__.split(".")[0]) >= 12


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_read_texts_reads_parquet_columns(tmp_path):
    path = write_parquet(tmp_path / "texts.parquet", {
        "id": [1, 2, 3, 4],
        "caption": ["a dog barks", None, "a cat sleeps", "rain on a roof"],
        "notes": ["x", "y", "z", "w"],
    })
    # the first known column name wins; missing values are dropped
    assert read_texts(path) == ["a dog barks", "a cat sleeps", "rain on a roof"]
    assert read_texts(path, column="notes", limit=2) == ["x", "y"]
    with pytest.raises(tm.InvalidInputError, match="no text column"):
        read_texts(write_parquet(tmp_path / "ids.parquet", {"id": [1, 2]}))


def test_train_and_embed_texts_read_parquet(gapdemo, tmp_path):
    corpus = descriptions(200)
    texts = write_parquet(tmp_path / "texts.parquet", {"text": corpus})
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("\n".join(modal_samples(100)))
    bundle = tmp_path / "bundle"
    out = run("train", "gapdemo", "--texts", texts, "--inputs", inputs, "--out", bundle,
              "--epochs", 1, "--batch-size", 64, "-e", "dim=16").output
    assert "trained gapdemo" in " ".join(out.split())
    assert (bundle / "modalities/gapdemo/projector.safetensors").exists()

    from_parquet, from_txt = tmp_path / "parquet.npy", tmp_path / "txt.npy"
    run("embed-texts", texts, "--encoder", "gapdemo", "-e", "dim=16", "--limit", 50,
        "--cache", tmp_path / "cache-parquet", "--out", from_parquet)
    (tmp_path / "texts.txt").write_text("\n".join(corpus))
    run("embed-texts", tmp_path / "texts.txt", "--encoder", "gapdemo", "-e", "dim=16",
        "--limit", 50, "--cache", tmp_path / "cache-txt", "--out", from_txt)
    a, b = np.load(from_parquet), np.load(from_txt)
    assert a.shape == (50, 16)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # same texts, same embeddings
