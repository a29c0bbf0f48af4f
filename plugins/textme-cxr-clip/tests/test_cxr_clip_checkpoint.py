"""Reading the published ``.tar`` checkpoints safely: OmegaConf objects become plain data without
any OmegaConf code running, malicious pickles are refused, the conversion to safetensors keeps
the weights and describes the architecture, and the encoder loads local and cached files."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from cxr_testlib import (
    FakeOmegaConf,
    hydra_config,
    random_state,
    tiny_r50,
    tiny_swin,
    upstream_checkpoint,
)
from textme_cxr_clip import CheckpointError, CXRClipEncoder, convert_checkpoint
from textme_cxr_clip.checkpoint import (
    PUBLISHED,
    load_converted,
    read_converted_architecture,
    read_upstream_checkpoint,
    resolve_published,
)

from textme_sdk.errors import InvalidInputError


@pytest.fixture()
def fake_omegaconf(monkeypatch):
    fake = FakeOmegaConf()
    fake.install(monkeypatch)
    return fake


def _save_upstream(path, fake, arch, prefix=""):
    state = random_state(arch)
    ckpt = upstream_checkpoint({prefix + k: v for k, v in state.items()}, hydra_config(fake, arch))
    torch.save(ckpt, path)
    return state


def test_omegaconf_objects_are_read_as_plain_data_without_running_them(
        fake_omegaconf, tokenizer_dir, tmp_path):
    arch = tiny_swin(tokenizer_dir)
    path = tmp_path / "swint_tiny.tar"
    state = _save_upstream(path, fake_omegaconf, arch)
    # what the published files need: plain weights_only loading refuses them
    with pytest.raises(Exception, match="omegaconf"):
        torch.load(path, weights_only=True)
    safe_before = set(torch.serialization.get_safe_globals())

    weights, config = read_upstream_checkpoint(path)

    assert fake_omegaconf.setstate_calls == []  # no class from the file was instantiated
    assert set(torch.serialization.get_safe_globals()) == safe_before  # nothing leaked
    assert set(weights) == set(state)
    assert all(torch.equal(weights[k], state[k]) for k in state)
    assert config["transform"]["train"]["RandomResizedCrop"]["scale"] == [0.8, 1.1]
    assert config["base"]["text_max_length"] == 256
    assert config["model"]["projection_head"] == {"name": "linear", "dropout": 0.1, "proj_dim": 32}


def test_conversion_writes_self_describing_safetensors(fake_omegaconf, tokenizer_dir, tmp_path):
    arch = tiny_r50(tokenizer_dir)
    src = tmp_path / "r50_tiny.tar"
    state = _save_upstream(src, fake_omegaconf, arch, prefix="module.")  # DDP-saved keys
    dst = convert_checkpoint(src)
    assert dst == tmp_path / "r50_tiny.safetensors"
    assert read_converted_architecture(dst) == arch
    weights, stored = load_converted(dst)
    assert stored == arch and set(weights) == set(state)
    assert all(torch.equal(weights[k], state[k]) for k in state)
    from safetensors import safe_open

    with safe_open(str(dst), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "textme-cxr-clip" and meta["source"] == "r50_tiny.tar"
    assert '"scale": [0.8, 1.1]' in meta["upstream_config"]
    assert not any(k.startswith(("optimizer", "scheduler")) for k in weights)


class _RunsShell:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evals:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return eval, (f"open({self.marker!r}, 'w').close()",)


class _Spawns:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return subprocess.Popen, (["touch", self.marker],)


@pytest.mark.parametrize("payload,named", [
    (_RunsShell, "posix.system|os.system"),
    (_Evals, "eval"),
    (_Spawns, "subprocess.Popen|commands.Popen"),  # protocol 2 writes Python 2 module names
])
def test_malicious_pickles_are_refused(fake_omegaconf, tokenizer_dir, tmp_path, payload, named):
    arch = tiny_swin(tokenizer_dir)
    marker = tmp_path / "pwned"
    config = hydra_config(fake_omegaconf, arch)
    config["base"]["hook"] = payload(marker)
    path = tmp_path / "evil.tar"
    torch.save(upstream_checkpoint(random_state(arch), config), path)
    with pytest.raises(CheckpointError, match=f"refused to read.*({named})"):
        read_upstream_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        CXRClipEncoder(checkpoint=path, cache_dir=tmp_path / "cache").load("cpu")
    assert not marker.exists()


def test_unlisted_classes_are_refused_by_name(tokenizer_dir, tmp_path):
    import argparse

    arch = tiny_swin(tokenizer_dir)
    path = tmp_path / "namespace.tar"
    torch.save({"model": random_state(arch), "config": {"args": argparse.Namespace(a=1)}}, path)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        read_upstream_checkpoint(path)


def test_not_a_cxr_clip_checkpoint(tmp_path):
    path = tmp_path / "other.tar"
    torch.save({"state_dict": {"visual.proj": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="not a CXR-CLIP"):
        convert_checkpoint(path)
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        read_upstream_checkpoint(path)
    path.write_bytes(b"not a zip and not a pickle")
    with pytest.raises(CheckpointError, match="refused to read"):
        read_upstream_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        read_upstream_checkpoint(tmp_path / "missing.tar")


def test_encoder_loads_the_upstream_tar_once_converted(fake_omegaconf, tokenizer_dir, tmp_path):
    arch = tiny_swin(tokenizer_dir)
    src = tmp_path / "swint_tiny.tar"
    state = _save_upstream(src, fake_omegaconf, arch)
    cache = tmp_path / "cache"
    enc = CXRClipEncoder(checkpoint=src, cache_dir=cache, device="cpu").load()
    assert enc.architecture == arch and enc.embedding_dim == 32
    assert all(torch.equal(v, state[k]) for k, v in enc._model.state_dict().items())
    converted = list((cache / "converted").glob("swint_tiny-*.safetensors"))
    assert len(converted) == 1
    stamp = converted[0].stat().st_mtime_ns
    again = CXRClipEncoder(checkpoint=src, cache_dir=cache, device="cpu").load()  # cached
    assert converted[0].stat().st_mtime_ns == stamp
    texts = ["no acute cardiopulmonary process", "left pleural effusion"]
    torch.testing.assert_close(again.encode_text(texts), enc.encode_text(texts))
    with pytest.raises(Exception, match="is a r50 but the weights hold a swint"):
        CXRClipEncoder("r50", checkpoint=src, cache_dir=cache).load("cpu")


def test_published_names_resolve_from_the_cache_and_fail_clearly_offline(
        tokenizer_dir, tmp_path, monkeypatch):
    from textme_cxr_clip.checkpoint import save_converted

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match=r"not in the cache.*offline.*swint_m\.tar"):
        resolve_published("swint_m", cache)
    with pytest.raises(CheckpointError, match="not a published"):
        resolve_published("swint_xl", cache)
    with pytest.raises(CheckpointError, match="offline"):
        CXRClipEncoder("r50_mcc", cache_dir=cache).load("cpu")
    assert sorted(PUBLISHED) == ["r50_m", "r50_mc", "r50_mcc", "swint_m", "swint_mc", "swint_mcc"]
    assert all(c.url.endswith(f"/{c.name}.tar") for c in PUBLISHED.values())

    arch = tiny_swin(tokenizer_dir)
    save_converted(random_state(arch), arch, cache / "swint_m.safetensors")
    enc = CXRClipEncoder("swint_m", cache_dir=cache, device="cpu")
    assert enc.config() == {"model": "swint_m", "random_init": False,
                            "embedding_dim": 512}  # size known on load
    assert enc.encode_text(["mild edema"]).shape == (1, 32)
    with pytest.raises(InvalidInputError, match="names an architecture, not weights"):
        CXRClipEncoder("swint")
    with pytest.raises(InvalidInputError, match="unknown CXR-CLIP model"):
        CXRClipEncoder("swint_large")


def test_reading_needs_no_omegaconf_and_imports_nothing_it_names(tokenizer_dir, tmp_path):
    """With no omegaconf module importable, the file still converts, and nothing is imported."""
    fake = FakeOmegaConf()
    for name, module in fake.modules.items():
        sys.modules[name] = module
    try:
        arch = tiny_swin(tokenizer_dir)
        path = tmp_path / "ckpt.tar"
        _save_upstream(path, fake, arch)
    finally:
        for name in fake.modules:
            sys.modules.pop(name, None)
    assert not any(m.startswith("omegaconf") for m in sys.modules)
    out = convert_checkpoint(path, tmp_path / "out.safetensors")
    assert not any(m.startswith("omegaconf") for m in sys.modules), "omegaconf was imported"
    assert fake.setstate_calls == [] and read_converted_architecture(out) == arch


def test_inert_names_admit_type_references_but_never_construct(tokenizer_dir, tmp_path):
    import argparse

    arch = tiny_swin(tokenizer_dir)
    names_a_type = tmp_path / "type.tar"
    torch.save({"model": random_state(arch), "config": {"cls": argparse.Namespace}}, names_a_type)
    with pytest.raises(CheckpointError, match="argparse.Namespace"):
        read_upstream_checkpoint(names_a_type)
    _, config = read_upstream_checkpoint(names_a_type, inert_names=["argparse.Namespace"])
    assert config == {"cls": "argparse.Namespace"}

    builds_one = tmp_path / "instance.tar"
    torch.save({"model": random_state(arch), "config": {"x": argparse.Namespace(a=1)}}, builds_one)
    with pytest.raises(CheckpointError, match="refused"):
        read_upstream_checkpoint(builds_one, inert_names=["argparse.Namespace"])


def test_command_line_conversion(fake_omegaconf, tokenizer_dir, tmp_path, capsys):
    from textme_cxr_clip.__main__ import main

    arch = tiny_r50(tokenizer_dir)
    src = tmp_path / "r50.tar"
    _save_upstream(src, fake_omegaconf, arch)
    assert main(["convert", str(src), str(tmp_path / "r50.safetensors")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r50.safetensors")
    assert read_converted_architecture(tmp_path / "r50.safetensors") == arch
    assert main(["convert", str(tmp_path / "missing.tar")]) == 1
    assert "not found" in capsys.readouterr().err


def test_self_referencing_config_is_refused(tokenizer_dir, tmp_path):
    arch = tiny_swin(tokenizer_dir)
    loop: list = []
    loop.append(loop)
    path = tmp_path / "loop.tar"
    torch.save({"model": random_state(arch), "config": {"loop": loop}}, path)
    with pytest.raises(CheckpointError, match="refers to itself"):
        read_upstream_checkpoint(path)
