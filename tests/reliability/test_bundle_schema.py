"""Every malformed config gives a one-line BundleFormatError naming the key and the expected type,
before anything is allocated."""

from __future__ import annotations

import os
import re

import pytest
from conftest import edit_json
from typer.testing import CliRunner

import textme_sdk as tm
from textme_sdk import bundle as bundle_mod

MODALITY = "modalities/gapdemo/config.json"


def _load_fails(bundle, error, match):
    with pytest.raises(error, match=match) as err:
        tm.TextME.from_pretrained(bundle)
    message = str(err.value)
    assert "\n" not in message
    assert not re.search(r"\b(\d+)-d but .* \1-d\b", message), message  # never self-contradicting
    return message


@pytest.fixture
def no_allocation(monkeypatch):
    """Fail the test if a projector is built: the checks must come first."""
    def refuse(cfg):
        raise AssertionError(f"a projector was built from {cfg}")

    monkeypatch.setattr(bundle_mod.Projector, "from_config", classmethod(lambda cls, cfg: refuse(cfg)))


@pytest.mark.parametrize("value", [2**40, 100_000_000, 17])
def test_a_changed_hidden_dim_is_caught_from_the_file_header(bundle, no_allocation, value):
    edit_json(bundle / MODALITY, lambda c: c["projector"].update(hidden_dim=value))
    if value > bundle_mod.MAX_DIM:
        _load_fails(bundle, tm.BundleFormatError, r"'projector.hidden_dim' must be a positive integer "
                    r"up to 1048576, got \d+; fix the file")
    else:
        _load_fails(bundle, tm.BundleFormatError, r"projector.safetensors does not fit the projector "
                    r"described in its config \(net.0.bias: file \(16,\) vs config \(\d+,\)")


def test_textme_info_on_a_memory_bomb_fails_fast(bundle, no_allocation):
    from textme_sdk.cli import get_app

    edit_json(bundle / MODALITY, lambda c: c["projector"].update(hidden_dim=1 << 20))
    res = CliRunner().invoke(get_app(), ["info", str(bundle)])
    assert res.exit_code != 0 and "does not fit" in res.output.replace("\n", " ")


@pytest.mark.parametrize("key, value, match", [
    ("hidden_dim", -5, "'projector.hidden_dim' must be a positive integer up to 1048576, got -5"),
    ("hidden_dim", 0, "'projector.hidden_dim' must be a positive integer"),
    ("hidden_dim", "16", "'projector.hidden_dim' must be a positive integer up to 1048576, got \"16\""),
    ("hidden_dim", 16.0, "got 16.0"),
    ("hidden_dim", True, "got true"),
    ("in_dim", None, "'projector.in_dim' must be a positive integer"),
    ("out_dim", "384", "'projector.out_dim' must be a positive integer"),
    ("num_layers", 0, "'projector.num_layers' must be a positive integer up to 256"),
    ("num_layers", 10**9, "'projector.num_layers' must be a positive integer up to 256"),
    ("num_layers", 3, "does not fit the projector"),
    ("dropout", 1.5, r"'projector.dropout' must be a number in \[0, 1\)"),
    ("dropout", float("nan"), "'projector.dropout' must be a number"),
    ("dropout", "0", "'projector.dropout' must be a number"),
    ("activation", "relu", "unsupported projector activation 'relu'"),
    ("bias", False, r"unknown projector config keys \['bias'\]"),
])
def test_bad_projector_numbers(bundle, no_allocation, key, value, match):
    edit_json(bundle / MODALITY, lambda c: c["projector"].update({key: value}))
    _load_fails(bundle, tm.BundleFormatError, match)


def test_a_null_hidden_dim_means_the_default_and_loads(bundle):
    edit_json(bundle / MODALITY, lambda c: c["projector"].update(hidden_dim=None))
    assert tm.TextME.from_pretrained(bundle).entry("gapdemo").projector.hidden_dim == 16


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("sha256"), "'sha256' must be an object with the SHA-256"),
    (lambda c: c["sha256"].pop("offsets.safetensors"), "'sha256' must be an object"),
    (lambda c: c.update(sha256=["abc"]), "'sha256' must be an object"),
    (lambda c: c["sha256"].update({"projector.safetensors": "abc"}), "'sha256' must be an object"),
    (lambda c: c.pop("projector"), "'projector' must be an object"),
    (lambda c: c.update(training=[1, 2]), "'training' must be an object, got \\[1, 2\\]"),
    (lambda c: c.update(offsets="x"), "'offsets' must be an object"),
])
def test_bad_modality_configs(bundle, no_allocation, change, match):
    edit_json(bundle / MODALITY, change)
    _load_fails(bundle, tm.BundleFormatError, match)


@pytest.mark.parametrize("change, error, match", [
    (lambda c: c.update(format_version=-3), tm.BundleFormatError,
     "'format_version' must be a positive integer, got -3"),
    (lambda c: c.update(format_version=0), tm.BundleFormatError, "'format_version'"),
    (lambda c: c.update(format_version="1"), tm.BundleFormatError, "'format_version'"),
    (lambda c: c.update(format_version=1.0), tm.BundleFormatError, "'format_version'"),
    (lambda c: c.update(format_version=True), tm.BundleFormatError, "'format_version'"),
    (lambda c: c.update(format_version=2), tm.BundleVersionError, "pip install -U"),
    (lambda c: c.update(versions=[1, 2]), tm.BundleFormatError,
     "'versions' must be an object of package names to version strings, got \\[1, 2\\]"),
    (lambda c: c.update(versions={"textme-sdk": 5}), tm.BundleFormatError, "'versions'"),
    (lambda c: c["anchor"].update(embedding_dim="384"), tm.BundleFormatError,
     "'anchor.embedding_dim' must be a positive integer up to 1048576, got \"384\""),
    (lambda c: c["anchor"].update(embedding_dim=-1), tm.BundleFormatError, "'anchor.embedding_dim'"),
    (lambda c: c["anchor"].update(embedding_dim=True), tm.BundleFormatError, "'anchor.embedding_dim'"),
    (lambda c: c["anchor"].update(config=[]), tm.BundleFormatError, "'anchor' must be an object"),
    (lambda c: c["anchor"].update(plugin=""), tm.BundleFormatError, "'anchor'"),
    (lambda c: c.update(anchor="minilm"), tm.BundleFormatError, "'anchor'"),
    (lambda c: c["modalities"]["gapdemo"].update(embedding_dim="16"), tm.BundleFormatError,
     "'modalities.gapdemo.embedding_dim' must be a positive integer"),
    (lambda c: c["modalities"]["gapdemo"].update(embedding_dim=32), tm.BundleFormatError,
     r"'projector.in_dim' is 16 but .*config.json records a 32-d encoder"),
    (lambda c: c["anchor"].update(embedding_dim=512), tm.DimensionMismatchError,
     r"the bundle was trained for a 512-d anchor but 'minilm' is 384-d"),
    (lambda c: c["modalities"]["gapdemo"].update(path=5), tm.BundleFormatError,
     "'modalities.gapdemo' must be an object with string 'path'"),
    (lambda c: c["modalities"]["gapdemo"].update(encoder=[1]), tm.BundleFormatError,
     "'modalities.gapdemo'"),
    (lambda c: c["modalities"]["gapdemo"].update(modality=3), tm.BundleFormatError,
     "'modalities.gapdemo.modality' must be a string"),
    (lambda c: c["modalities"].update(gapdemo=None), tm.BundleFormatError, "'modalities.gapdemo'"),
    (lambda c: c.update(similarity="dot"), tm.BundleFormatError,
     "'similarity' must be \"cosine\" \\(the only one supported\\), got \"dot\""),
])
def test_bad_bundle_configs(bundle, no_allocation, change, error, match):
    edit_json(bundle / "config.json", change)
    _load_fails(bundle, error, match)


@pytest.mark.parametrize("data, match", [
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),  # deeper than the parser's recursion
    (b"[1, 2]", "the config must be a JSON object, got \\[1, 2\\]"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"", "not valid JSON"),
])
def test_bad_json(bundle, data, match):
    (bundle / "config.json").write_bytes(data)
    _load_fails(bundle, tm.BundleFormatError, match)


def test_an_oversized_config_is_not_read(bundle):
    with open(bundle / MODALITY, "r+b") as f:
        f.truncate(bundle_mod.MAX_CONFIG_BYTES + 1)  # sparse: no disk space used
    _load_fails(bundle, tm.BundleFormatError, "too large for a bundle config")


def test_a_fifo_or_folder_in_place_of_a_file_is_refused(bundle):
    weights = bundle / "modalities/gapdemo/offsets.safetensors"
    weights.unlink()
    os.mkfifo(weights)  # reading it would block forever
    _load_fails(bundle, tm.BundleFormatError, "offsets.safetensors is not a regular file")
    weights.unlink()
    weights.mkdir()
    _load_fails(bundle, tm.BundleFormatError, "is not a regular file")


def _rewrite(bundle, name, tensors):
    import hashlib

    from safetensors.torch import save_file

    path = bundle / "modalities/gapdemo" / name
    save_file(tensors, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    edit_json(bundle / MODALITY, lambda c: c["sha256"].update({name: sha}))


def test_weight_headers_are_checked_against_the_config(bundle, no_allocation):
    import torch
    from safetensors.torch import load_file

    offsets = load_file(bundle / "modalities/gapdemo/offsets.safetensors")
    _rewrite(bundle, "offsets.safetensors", {**offsets, "mu_text": torch.zeros(8), "mu_modal": torch.zeros(8)})
    _load_fails(bundle, tm.DimensionMismatchError, "offsets are 8-d but the projector takes 16-d")
    _rewrite(bundle, "offsets.safetensors", {k: v for k, v in offsets.items() if k != "se"})
    _load_fails(bundle, tm.BundleFormatError, r"missing \['se'\]")
    _rewrite(bundle, "offsets.safetensors", {**offsets, "n_text": torch.tensor([1.5])})
    _load_fails(bundle, tm.BundleFormatError, "'n_text' must have shape \\[1\\], got F32")
    proj = load_file(bundle / "modalities/gapdemo/projector.safetensors")
    _rewrite(bundle, "offsets.safetensors", offsets)
    _rewrite(bundle, "projector.safetensors", {**proj, "net.0.bias": torch.zeros(16, dtype=torch.int32)})
    _load_fails(bundle, tm.BundleFormatError, r"tensors \['net.0.bias'\] are not floating point")
    _rewrite(bundle, "projector.safetensors", {**proj, "extra": torch.zeros(1)})
    _load_fails(bundle, tm.BundleFormatError, "extra: file \\(1,\\) vs config None")
