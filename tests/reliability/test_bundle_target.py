"""save_pretrained never deletes or replaces a folder that is not a textme bundle."""

from __future__ import annotations

import logging
import os

import pytest
from conftest import make_model, tree
from typer.testing import CliRunner

import textme_sdk as tm
from textme_sdk.bundle import check_save_target

USER_FILES = {"thesis.tex": b"\\documentclass{article}\n", "sub/data.csv": b"a,b\n1,2\n",
              "README.md": b"# My thesis\n"}


def _user_folder(path):
    for rel, data in USER_FILES.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return path


def test_a_folder_that_is_not_a_bundle_is_refused_and_untouched(model, tmp_path):
    user = _user_folder(tmp_path / "thesis")
    with pytest.raises(tm.OutputExistsError, match=r"thesis exists and is not a textme bundle "
                       r"\(it holds README.md, sub, thesis.tex\); nothing was changed") as err:
        model.save_pretrained(user)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, FileExistsError) and isinstance(err.value, tm.BundleError)
    assert tree(user) == USER_FILES
    assert sorted(os.listdir(tmp_path)) == ["thesis"]  # no temporary folder left either


def test_a_file_is_refused(model, tmp_path):
    target = tmp_path / "weights.bin"
    target.write_bytes(b"x")
    with pytest.raises(tm.OutputExistsError, match="is not a folder"):
        model.save_pretrained(target)
    assert target.read_bytes() == b"x"


def test_a_folder_with_an_unreadable_config_is_not_taken_for_a_bundle(model, tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')  # someone else's config
    (folder / "pytorch_model.bin").write_bytes(b"weights")
    with pytest.raises(tm.OutputExistsError):
        model.save_pretrained(folder)
    (folder / "config.json").write_text("{damaged")
    with pytest.raises(tm.OutputExistsError):
        model.save_pretrained(folder)
    assert (folder / "pytorch_model.bin").read_bytes() == b"weights"


def test_missing_and_empty_folders_are_written(model, tmp_path):
    assert check_save_target(tmp_path / "new") is None
    model.save_pretrained(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    assert check_save_target(tmp_path / "empty") is None
    model.save_pretrained(tmp_path / "empty")
    for name in ("new", "empty"):
        assert tm.TextME.from_pretrained(tmp_path / name).modalities == ["gapdemo"]
    assert check_save_target(tmp_path / "new")["library"] == "textme-sdk"


def test_files_added_to_a_bundle_are_carried_over(model, tmp_path, minilm):
    path = model.save_pretrained(tmp_path / "b")
    added = {"notes.txt": b"n\n", "results/eval.csv": b"r\n", "modalities/gapdemo/NOTES.md": b"m\n"}
    for rel, data in added.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    (path / "latest.csv").symlink_to("results/eval.csv")
    (path / "empty").mkdir()
    (path / "README.md").write_text("# hand-written\n")
    before = (path / "modalities/gapdemo/projector.safetensors").read_bytes()

    make_model(minilm, seed=3).save_pretrained(path)

    files = tree(path)
    assert {k: files[k] for k in added} == added
    assert os.readlink(path / "latest.csv") == "results/eval.csv"
    assert (path / "empty").is_dir()
    assert files["README.md"] == b"# hand-written\n"
    assert files["modalities/gapdemo/projector.safetensors"] != before  # the new bundle
    assert tm.TextME.from_pretrained(path).modalities == ["gapdemo"]
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_a_user_file_where_the_new_bundle_writes_is_refused(model, tmp_path, minilm):
    path = model.save_pretrained(tmp_path / "b")
    (path / "modalities/second").mkdir()
    (path / "modalities/second/config.json").write_text("mine")
    before = tree(path)
    with pytest.raises(tm.OutputExistsError, match="move it out of"):
        make_model(minilm, names=("gapdemo", "second")).save_pretrained(path)
    assert tree(path) == before
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_a_link_to_a_bundle_is_followed_and_kept(model, tmp_path, minilm):
    real = model.save_pretrained(tmp_path / "run3")
    (tmp_path / "latest").symlink_to("run3")
    make_model(minilm, seed=2).save_pretrained(tmp_path / "latest")
    assert (tmp_path / "latest").is_symlink() and os.readlink(tmp_path / "latest") == "run3"
    assert tm.TextME.from_pretrained(real).modalities == ["gapdemo"]
    (tmp_path / "dangling").symlink_to("nowhere")
    with pytest.raises(tm.OutputExistsError, match="broken symbolic link"):
        model.save_pretrained(tmp_path / "dangling")


def test_dropping_modalities_of_the_bundle_is_logged(gapdemo, minilm, tmp_path, caplog):
    path = make_model(minilm, names=("gapdemo", "second")).save_pretrained(tmp_path / "b")
    with caplog.at_level(logging.WARNING, logger="textme_sdk.bundle"):
        make_model(minilm).save_pretrained(path)
    assert "drops its modalities ['second']" in caplog.text
    assert tm.TextME.from_pretrained(path).modalities == ["gapdemo"]


def test_cli_train_into_a_user_folder_deletes_nothing(gapdemo, tmp_path):
    from textme_sdk.cli import get_app

    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"a {w} dog" for w in ("red", "blue", "big", "small", "old", "young",
                                                     "happy", "sad")) + "\n")
    user = _user_folder(tmp_path / "thesis")
    res = CliRunner().invoke(get_app(), ["train", "gapdemo", "--texts", str(texts), "--out", str(user),
                                         "--no-offsets", "--epochs", "1", "--batch-size", "4",
                                         "-e", "dim=16"])
    assert res.exit_code != 0
    assert tree(user) == USER_FILES
