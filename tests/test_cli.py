import json
import sys

import numpy as np
import pytest

from gapworld import descriptions, modal_samples

from cli_runner import run  # noqa: E402


@pytest.fixture
def files(tmp_path):
    (tmp_path / "texts.txt").write_text("\n".join(descriptions(300)))
    (tmp_path / "inputs.txt").write_text("\n".join(modal_samples(200)))
    return tmp_path


def test_plugins_json(gapdemo):
    rows = json.loads(run("plugins", "--json").output)
    gd = next(r for r in rows if r["plugin"] == "gapdemo")
    assert gd["encoder_info"]["gapdemo"]["modality"] == "gapdemo"
    assert gd["encoder_info"]["gapdemo"]["license"] == "Apache-2.0"
    assert "gapdemo" in run("plugins").output


def test_offsets_train_info_embed(gapdemo, files):
    out = run("offsets", "gapdemo", "--texts", files / "texts.txt", "--inputs", files / "inputs.txt",
              "--out", files / "off.safetensors", "-e", "dim=16").output
    assert "from 300 texts / 200 inputs" in out
    bundle = files / "bundle"
    run("train", "gapdemo", "--texts", files / "texts.txt", "--offsets", files / "off.safetensors",
        "--out", bundle, "--epochs", 2, "--batch-size", 64, "-e", "dim=16")
    run("train", "gapdemo", "--texts", files / "texts.txt", "--inputs", files / "inputs.txt",
        "--out", bundle, "--epochs", 2, "--batch-size", 64, "--name", "second", "-e", "dim=16", "-e", "seed=3",
        "--hidden-dim", 24, "--input-noise", 0.01)
    # one resumable training state per modality, so the second never clobbers the first
    assert {p.name for p in (files / ".bundle.checkpoints").iterdir()} == {"gapdemo", "second"}
    cfg = json.loads((bundle / "modalities/second/config.json").read_text())
    assert cfg["projector"]["hidden_dim"] == 24
    info = json.loads(run("info", bundle, "--json").output)
    assert set(info["modalities"]) == {"gapdemo", "second"}
    assert info["modalities"]["second"]["encoder"]["seed"] == 3
    assert info["modalities"]["gapdemo"]["training"]["epochs"] == 2
    assert info["anchor"]["embedding_dim"] == 384
    run("embed", bundle, "dog#1", "cat#2", "-m", "gapdemo", "--out", files / "e.npy")
    emb = np.load(files / "e.npy")
    assert emb.shape == (2, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_clear_errors(gapdemo, files, monkeypatch):
    from textme_sdk import plugins

    monkeypatch.setitem(plugins.KNOWN_EXTRAS, "hologram", "holo")
    res = run("offsets", "hologram", "--texts", files / "texts.txt", "--inputs", files, ok=False)
    assert res.exit_code == 2 and "pip install 'textme-sdk[holo]'" in res.output.replace("\n", " ")
    res = run("train", "gapdemo", "--texts", files / "texts.txt", "--out", files / "b", ok=False)
    assert res.exit_code != 0 and "--inputs" in res.output
    res = run("info", files, ok=False)
    assert res.exit_code == 2 and "not a textme bundle" in res.output


def test_push_and_pull(gapdemo, files, fake_hub):
    bundle = files / "bundle"
    run("train", "gapdemo", "--texts", files / "texts.txt", "--inputs", files / "inputs.txt",
        "--out", bundle, "--epochs", 1, "--batch-size", 64, "-e", "dim=16")
    run("push", bundle, "org/cli-bundle", "--token", "t")
    out = run("pull", "org/cli-bundle", "--out", files / "pulled").output
    assert "gapdemo" in out
    assert (files / "pulled/modalities/gapdemo/projector.safetensors").exists()


def test_plugins_table_with_a_plugin_that_states_no_licence(monkeypatch):
    import types

    import textme_sdk
    from textme_sdk import plugins

    mod = types.ModuleType("textme_test_nolicence")

    @textme_sdk.hookimpl
    def register_encoders(register):
        register("nolicence", lambda: None, modality="thing", license=None)

    mod.register_encoders = register_encoders
    monkeypatch.setitem(sys.modules, "textme_test_nolicence", mod)
    monkeypatch.setattr(plugins, "DEFAULT_PLUGINS", (*plugins.DEFAULT_PLUGINS, "textme_test_nolicence"))
    textme_sdk.reload_plugins()
    try:
        out = run("plugins").output
        assert "nolicence" in out  # the row is there (the command used to crash on None)
    finally:
        monkeypatch.undo()
        textme_sdk.reload_plugins()
