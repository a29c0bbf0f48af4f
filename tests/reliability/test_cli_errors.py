"""Bad inputs to the CLI end as one line naming the problem and the fix, with exit code 2
(internal errors: exit 1 and a pointer to --debug), checked before any expensive work, and
never delete a user's files."""

from __future__ import annotations

import errno
import json

import pytest
from typer.testing import CliRunner

from gapworld import descriptions, modal_samples
from textme_sdk.cli import get_app

runner = CliRunner()


def run(*args):
    res = runner.invoke(get_app(), [str(a) for a in args])
    return res


def assert_one_line_error(res, fragment: str, code: int = 2) -> None:
    out = res.output
    assert res.exit_code == code, (res.exit_code, out, repr(res.exception))
    assert "Traceback" not in out, out
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    flat = " ".join("".join(c for c in out if c not in "│╭╮╰╯─").split())  # click's usage box
    assert fragment in flat, out


@pytest.fixture
def files(tmp_path):
    (tmp_path / "texts.txt").write_text("\n".join(descriptions(300)))
    (tmp_path / "inputs.txt").write_text("\n".join(modal_samples(200)))
    return tmp_path


def train(files, *extra):
    return run("train", "gapdemo", "--texts", files / "texts.txt", "--inputs",
               files / "inputs.txt", "--epochs", 1, "--batch-size", 64, "-e", "dim=16", *extra)


def test_a_user_folder_given_as_out_is_refused_and_kept(gapdemo, files):
    user = files / "userdir"
    (user / "sub").mkdir(parents=True)
    (user / "thesis.tex").write_text("years of work")
    (user / "sub" / "data.csv").write_text("a,b\n1,2\n")
    (user / "README.md").write_text("# mine")
    res = train(files, "--out", user)
    assert_one_line_error(res, "exists and is not a textme bundle")
    assert (user / "thesis.tex").read_text() == "years of work"
    assert (user / "sub" / "data.csv").exists() and (user / "README.md").read_text() == "# mine"
    assert not (files / ".userdir.checkpoints").exists()  # refused before any work
    res = train(files, "--out", files / "texts.txt")
    assert_one_line_error(res, "exists and is not a folder")


@pytest.mark.parametrize("name", ["../../escaped", "..", "a/b", "text", ".hidden", "x y"])
def test_unsafe_modality_names_are_refused_before_any_work(gapdemo, files, name):
    res = train(files, "--out", files / "bn", "--name", name)
    assert_one_line_error(res, "reserved for the anchor" if name == "text"
                          else f"invalid modality name {name!r}")
    assert not (files / "bn").exists() and not (files.parent / "escaped").exists()


@pytest.mark.parametrize("extra, fragment", [
    (["--lr", "1e30"], "TrainConfig.lr must be a finite number in (0, 1000]"),
    (["--lr", "-1"], "TrainConfig.lr must be"),
    (["--epochs", "-1"], "Invalid value for '--epochs'"),
    (["--batch-size", "0"], "Invalid value for '--batch-size'"),
    (["--hidden-dim", "-1"], "Invalid value for '--hidden-dim'"),
    (["--input-noise", "nan"], "TrainConfig.input_noise must be"),
    (["-e", "nonsense=1"], "could not be built with the arguments ['dim', 'nonsense']"),
])
def test_bad_training_options_fail_before_any_work(gapdemo, files, extra, fragment):
    res = train(files, "--out", files / "b", *extra)
    assert_one_line_error(res, fragment)
    assert not (files / "b").exists()


def test_offsets_file_that_is_not_offsets(gapdemo, files):
    (files / "bad.safetensors").write_bytes(b"not safetensors at all")
    res = run("train", "gapdemo", "--texts", files / "texts.txt", "--offsets",
              files / "bad.safetensors", "--out", files / "b", "-e", "dim=16")
    assert_one_line_error(res, "is not an offsets file written by textme-sdk")
    res = run("train", "gapdemo", "--texts", files / "texts.txt", "--offsets",
              files / "missing.safetensors", "--out", files / "b", "-e", "dim=16")
    assert_one_line_error(res, "no offsets file at")


def test_latin1_texts_file(gapdemo, files):
    (files / "latin.txt").write_bytes("un caf\xe9 cr\xe8me\n".encode("latin-1"))
    res = run("train", "gapdemo", "--texts", files / "latin.txt", "--inputs",
              files / "inputs.txt", "--out", files / "b", "-e", "dim=16")
    assert_one_line_error(res, "is not UTF-8 text")
    res = run("embed-texts", files / "latin.txt", "--anchor", "minilm")
    assert_one_line_error(res, "iconv -f latin1 -t utf-8")


def test_chunk_and_batch_sizes_must_be_positive(files):
    for opt in ("--chunk-size", "--batch-size"):
        res = run("embed-texts", files / "texts.txt", "--anchor", "minilm", opt, 0)
        assert_one_line_error(res, f"Invalid value for '{opt}'")


def test_output_paths_are_checked_before_the_embedding_is_computed(files, monkeypatch):
    import textme_sdk.extraction as extraction

    called = []
    monkeypatch.setattr(extraction, "extract_text_embeddings",
                        lambda *a, **k: called.append(1))
    res = run("embed-texts", files / "texts.txt", "--anchor", "minilm", "--out",
              files / "texts.txt" / "sub" / "e.npy")
    assert_one_line_error(res, "cannot create the folder of")
    res = run("embed-texts", files / "texts.txt", "--anchor", "minilm", "--out", files)
    assert_one_line_error(res, "is a folder; pass a file name")
    assert not called


def test_resume_with_another_config_is_one_line(gapdemo, files):
    assert train(files, "--out", files / "b").exit_code == 0
    res = train(files, "--out", files / "b2", "--resume")  # a fresh run: resume is a no-op
    assert res.exit_code == 0, res.output
    (files / "b3").mkdir()
    train(files, "--out", files / "b3")
    res = train(files, "--out", files / "b3", "--resume", "--lr", "0.001")
    assert_one_line_error(res, "different TrainConfig (differs in: lr)")


def test_no_space_left_while_checkpointing_is_one_line(gapdemo, files, monkeypatch):
    from textme_sdk.engine import trainer

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "state.safetensors")

    monkeypatch.setattr(trainer, "atomic_save", full_disk)
    res = train(files, "--out", files / "b")
    assert_one_line_error(res, "no space left on the device writing 'state.safetensors'")


def test_missing_inputs_and_bundles_are_one_line(gapdemo, files):
    train(files, "--out", files / "b")
    res = run("embed", files / "b", "dog#1", "-m", "nosuch")
    assert_one_line_error(res, "has no modality 'nosuch'")
    res = run("info", files / "texts.txt")
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_internal_errors_exit_1_and_point_to_debug(gapdemo, files, monkeypatch):
    import textme_sdk as tm

    def boom(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(tm, "compute_offsets", boom)
    res = train(files, "--out", files / "b")
    assert_one_line_error(res, "internal error (ZeroDivisionError: division by zero); rerun "
                               "with --debug", code=1)
    res = runner.invoke(get_app(), ["--debug", "train", "gapdemo", "--texts",
                                    str(files / "texts.txt"), "--inputs",
                                    str(files / "inputs.txt"), "--out", str(files / "b"),
                                    "-e", "dim=16"])
    assert res.exit_code == 1 and "Traceback" in res.output  # --debug shows it
    assert "Traceback" not in train(files, "--out", files / "b").output  # for that command only


def test_plugins_json_still_lists_losses(gapdemo):
    rows = json.loads(run("plugins", "--json").output)
    builtin = next(r for r in rows if r["plugin"] == "textme_sdk.builtin.losses")
    assert builtin["losses"] == ["hard_negative_infonce", "infonce"]


def test_on_error_skip_lists_unreadable_inputs_and_records_them(gapdemo, files):
    """gapdemo refuses non-string inputs only, so a list file of modal inputs cannot hold a bad
    one; the ref-image encoder reads files: a missing and a damaged file among good ones."""
    import numpy as np
    from PIL import Image

    folder = files / "images"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"ok{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    listing = files / "images.txt"
    paths = sorted(str(p) for p in folder.glob("*.png")) + [str(folder / "gone.png")]
    listing.write_text("\n".join(paths))

    res = run("offsets", "ref-image", "--texts", files / "texts.txt", "--inputs", listing,
              "--out", files / "o.safetensors")
    assert res.exit_code == 2 and "Traceback" not in res.output  # raise is the default
    res = run("offsets", "ref-image", "--texts", files / "texts.txt", "--inputs", listing,
              "--out", files / "o.safetensors", "--on-error", "skip")
    assert res.exit_code == 0, res.output
    assert "skipped 2 of 8 inputs" in res.output and "broken.png" in res.output
    assert "gone.png" in res.output and "6 inputs" in res.output

    res = run("train", "ref-image", "--texts", files / "texts.txt", "--inputs", listing,
              "--out", files / "bundle", "--epochs", 1, "--batch-size", 64, "--on-error", "skip")
    assert res.exit_code == 0, res.output
    cfg = json.loads((files / "bundle/modalities/image/config.json").read_text())
    assert cfg["offsets"]["n_modal"] == 6 and cfg["offsets"]["skipped"] == 2
    assert sorted(p.rsplit("/", 1)[1] for p in cfg["offsets"]["skipped_inputs"]) == [
        "broken.png", "gone.png"]

    good = [p for p in paths if "/ok" in p]
    res = run("embed", files / "bundle", *good[:3], paths[-1], "-m", "image", "--on-error",
              "skip", "--out", files / "e.npy")
    assert res.exit_code == 0, res.output
    assert np.load(files / "e.npy").shape == (3, 384) and "skipped 1 of 4" in res.output
    res = run("embed", files / "bundle", paths[0], "-m", "image", "--on-error", "maybe")
    assert_one_line_error(res, "--on-error must be 'raise' or 'skip'")
