"""EmergentBridge (noisy bridge anchor, orthogonal alignment) and anchor-space re-centring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import textme_sdk as tm
from textme_sdk.engine.bridge import (
    AnchorRecentring,
    BridgeMapping,
    bridge_loss,
    bridge_term,
    contrastive_bridge_loss,
)
from textme_sdk.engine.trainer import fit_projector
from textme_sdk.training import resolve_bridge

from gapworld import descriptions, modal_samples


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ------------------------------------------------------------------------------- the loss
def test_orthogonal_loss_has_zero_gradient_along_the_anchor():
    z, a, p = _unit(32, 24, seed=1), _unit(32, 24, seed=2), _unit(32, 3, 24, seed=3)
    z.requires_grad_(True)
    bridge_loss(z, a, p, "orthogonal").backward()
    along = (z.grad * a).sum(-1)
    assert z.grad.norm() > 1e-3  # the loss does pull z (orthogonally)
    assert along.abs().max() < 1e-7
    # numerically: moving every z_i along its own z'_i does not change the loss
    eps = 1e-2
    with torch.no_grad():
        plus = bridge_loss(z + eps * a, a, p, "orthogonal")
        minus = bridge_loss(z - eps * a, a, p, "orthogonal")
        other = bridge_loss(z + eps * _unit(32, 24, seed=4), a, p, "orthogonal")
    assert abs((plus - minus).item()) / (2 * eps) < 1e-5
    assert abs((other - bridge_loss(z, a, p, "orthogonal")).item()) > 1e-4


def test_full_mode_pulls_along_the_anchor_too():
    z, a, p = _unit(32, 24, seed=1), _unit(32, 24, seed=2), _unit(32, 24, seed=3)
    z.requires_grad_(True)
    loss = bridge_loss(z, a, p, "full")
    loss.backward()
    assert (z.grad * a).sum(-1).abs().max() > 1e-3
    torch.testing.assert_close(loss, (2 - 2 * (z * p).sum(-1)).mean())


def test_centred_loss_is_orthogonal_and_blind_to_a_common_shift():
    z, a, p = _unit(32, 24, seed=1), _unit(32, 24, seed=2), _unit(32, 2, 24, seed=3)
    z.requires_grad_(True)
    bridge_loss(z, a, p, "orthogonal", centred=True).backward()
    assert z.grad.norm() > 1e-3
    assert (z.grad * a).sum(-1).abs().max() < 1e-7
    eps = 1e-2
    with torch.no_grad():
        plus = bridge_loss(z + eps * a, a, p, "orthogonal", centred=True)
        minus = bridge_loss(z - eps * a, a, p, "orthogonal", centred=True)
    assert abs((plus - minus).item()) / (2 * eps) < 1e-5
    # full mode: the per-sample pulls sum to zero, and moving every z by one vector changes
    # nothing (the uncentred form does change)
    z.grad = None
    bridge_loss(z, a, p, "full", centred=True).backward()
    assert z.grad.norm() > 1e-3 and z.grad.sum(0).abs().max() < 1e-6
    shift = 0.3 * _unit(1, 24, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(bridge_loss(z + shift, a, p, "full", centred=True),
                                   bridge_loss(z, a, p, "full", centred=True))
        assert abs((bridge_loss(z + shift, a, p, "full") - bridge_loss(z, a, p, "full")).item()) > 1e-3
    # and it is the uncentred loss of the centred vectors
    zc, pc = z.detach() - z.detach().mean(0), p - p.mean(0)
    torch.testing.assert_close(bridge_loss(z, a, p, "full", centred=True),
                               (zc[:, None] - pc).pow(2).sum(-1).mean())


def test_angular_loss_moves_z_along_the_sphere_and_orthogonally_to_the_anchor():
    z, a, p = _unit(32, 24, seed=1), _unit(32, 24, seed=2), _unit(32, 24, seed=3)
    for centred in (False, True):
        z = z.detach().requires_grad_(True)
        loss = bridge_loss(z, a, p, "orthogonal", centred=centred, angular=True)
        loss.backward()
        assert z.grad.norm() > 1e-3
        assert (z.grad * a).sum(-1).abs().max() < 1e-6  # not along z'
        assert (z.grad * z).sum(-1).abs().max() < 1e-6  # nor along z: cos(z, z') is kept
    # the value is the squared distance of the orthogonal parts' directions
    r = lambda v: F.normalize(v - (v * a).sum(-1, keepdim=True) * a, dim=-1)  # noqa: E731
    torch.testing.assert_close(bridge_loss(z.detach(), a, p, "orthogonal", angular=True),
                               (r(z.detach()) - r(p)).pow(2).sum(-1).mean())
    cfg = tm.TrainConfig(bridge_weight=1.0, bridge_loss="angular-centred")
    torch.testing.assert_close(bridge_term(z.detach(), a, p[:, None], cfg, 0),
                               bridge_loss(z.detach(), a, p, centred=True, angular=True))


def test_contrastive_orthogonal_loss_has_zero_gradient_along_the_anchor():
    z, a, p = _unit(32, 24, seed=1), _unit(32, 24, seed=2), _unit(32, 2, 24, seed=3)
    z.requires_grad_(True)
    contrastive_bridge_loss(z, a, p, "orthogonal").backward()
    assert z.grad.norm() > 1e-3
    assert (z.grad * a).sum(-1).abs().max() < 1e-6
    eps = 1e-2
    with torch.no_grad():
        base = contrastive_bridge_loss(z, a, p, "orthogonal")
        plus = contrastive_bridge_loss(z + eps * a, a, p, "orthogonal")
        minus = contrastive_bridge_loss(z - eps * a, a, p, "orthogonal")
        down = contrastive_bridge_loss(z - eps * F.normalize(z.grad, dim=-1), a, p, "orthogonal")
    assert abs((plus - minus).item()) / (2 * eps) < 1e-4
    assert (base - down).item() > 1e-3  # while a step against the gradient does lower it


def test_contrastive_loss_matches_the_explicit_projection_and_ignores_a_shared_shift():
    z, a, p = _unit(16, 12, seed=1), _unit(16, 12, seed=2), _unit(16, 12, seed=3)
    tau = 0.1
    # the definition, with an explicit [B, B, d] projection of every proxy by each query's anchor
    u = z - (z * a).sum(-1, keepdim=True) * a
    r = p[None] - (p[None] * a[:, None]).sum(-1, keepdim=True) * a[:, None]
    s = (u[:, None] * F.normalize(r, dim=-1)).sum(-1) / tau
    want = (torch.logsumexp(s, 1) - s.diagonal()).mean()
    torch.testing.assert_close(contrastive_bridge_loss(z, a, p, "orthogonal", tau), want)
    s_full = z @ p.T / tau
    torch.testing.assert_close(contrastive_bridge_loss(z, a, p, "full", tau),
                               (torch.logsumexp(s_full, 1) - s_full.diagonal()).mean())
    # proxies that are all one vector tell no text from another: no pull at all (the cosine
    # form pulls every z towards that common vector)
    common = _unit(1, 12, seed=9).expand(16, 12)
    for mode in ("orthogonal", "full"):
        z.requires_grad_(True)
        loss = contrastive_bridge_loss(z, a, common, mode, tau)
        loss.backward()
        torch.testing.assert_close(loss, torch.tensor(float(np.log(16))))
        assert z.grad.abs().max() < 1e-5
        z.grad = None
        bridge_loss(z, a, common, mode).backward()
        assert z.grad.abs().max() > 1e-3
        z = z.detach()


def test_contrastive_loss_does_not_count_a_repeated_text_as_a_negative():
    z, a, p = _unit(8, 12, seed=1), _unit(8, 12, seed=2), _unit(8, 12, seed=3)
    a2, p2 = a.clone(), p.clone()
    a2[1], p2[1] = a2[0], p2[0]  # text 0 appears twice in the batch
    loss = contrastive_bridge_loss(z, a2, p2, "full", 0.1)
    s = z @ p2.T / 0.1
    s[0, 1] = s[1, 0] = float("-inf")
    torch.testing.assert_close(loss, (torch.logsumexp(s, 1) - s.diagonal()).mean())


def test_bridge_term_noise_is_seeded_by_step():
    z, a, p = _unit(8, 16, seed=1), _unit(8, 16, seed=2), _unit(8, 1, 16, seed=3)
    cfg = tm.TrainConfig(bridge_weight=2.0, bridge_noise=0.1)
    assert torch.equal(bridge_term(z, a, p, cfg, 5), bridge_term(z, a, p, cfg, 5))
    assert not torch.equal(bridge_term(z, a, p, cfg, 5), bridge_term(z, a, p, cfg, 6))
    clean = tm.TrainConfig(bridge_weight=2.0)
    torch.testing.assert_close(bridge_term(z, a, p, clean, 5), 2.0 * bridge_loss(z, a, p))
    centred = tm.TrainConfig(bridge_weight=2.0, bridge_loss="centred")
    torch.testing.assert_close(bridge_term(z, a, p, centred, 5),
                               2.0 * bridge_loss(z, a, p, centred=True))
    nce = tm.TrainConfig(bridge_weight=2.0, bridge_loss="contrastive", temperature=0.2)
    torch.testing.assert_close(bridge_term(z, a, p, nce, 5),
                               2.0 * contrastive_bridge_loss(z, a, p, "orthogonal", 0.2))


def test_mapping_fit_recovers_an_affine_map():
    x = _unit(400, 12, seed=1)
    w, b = torch.randn(12, 12), torch.randn(12) * 0.1
    y = F.normalize(x @ w.T + b, dim=-1)
    g = BridgeMapping.fit("image", x, x @ w.T + b, ridge=1e-8)
    torch.testing.assert_close(g(x), y, atol=1e-4, rtol=0)
    assert g.fit_cosine > 0.999 and g.n_texts == 400


def test_recentring_moves_the_modal_centroid_onto_the_text_one():
    modal = F.normalize(_unit(500, 8, seed=1) + torch.tensor([2.0] + [0.0] * 7), dim=-1)
    text = _unit(500, 8, seed=2)
    r = AnchorRecentring.from_embeddings(modal, text)
    assert r.gap > 0.5
    moved = r.apply(modal)
    assert torch.allclose(moved.norm(dim=-1), torch.ones(500), atol=1e-5)
    assert (moved.mean(0) - text.mean(0)).norm() < 0.5 * r.gap


# ----------------------------------------------------------------------------- the config
def test_config_fields_are_validated_and_plain_dicts_keep_their_keys():
    for bad in (dict(bridge_weight=-1), dict(bridge_weight=float("nan")), dict(bridge_noise=-0.1),
                dict(bridge_mode="sideways"), dict(bridge_loss="hinge")):
        with pytest.raises(tm.InvalidInputError, match="bridge_"):
            tm.TrainConfig(**bad)
    plain = tm.TrainConfig().to_dict()
    assert not any(k.startswith("bridge_") for k in plain)  # cache and checkpoint keys unchanged
    assert tm.TrainConfig.from_dict(plain) == tm.TrainConfig()
    bridged = tm.TrainConfig(bridge_weight=0.5, bridge_mode="full").to_dict()
    assert bridged["bridge_weight"] == 0.5 and bridged["bridge_mode"] == "full"
    assert tm.TrainConfig.from_dict(bridged) == tm.TrainConfig(bridge_weight=0.5, bridge_mode="full")
    assert "bridge_loss" not in bridged  # bridged runs of before the setting keep their keys
    nce = tm.TrainConfig(bridge_weight=0.5, bridge_loss="contrastive")
    assert nce.to_dict()["bridge_loss"] == "contrastive"
    assert tm.TrainConfig.from_dict(nce.to_dict()) == nce


def _data(n=300, d_in=12, d_out=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g)
    y = F.normalize(x @ torch.randn(d_in, d_out, generator=g), dim=-1)
    proxies = F.normalize(y + 0.3 * torch.randn(n, 1, d_out, generator=g), dim=-1)
    return x, y, proxies


def test_bridge_weight_zero_trains_bit_identically():
    x, y, proxies = _data()
    base = dict(epochs=3, batch_size=64, val_fraction=0.1, input_noise=0.01)
    plain = fit_projector(x, y, tm.TrainConfig(**base)).projector.state_dict()
    zero = fit_projector(x, y, tm.TrainConfig(**base, bridge_noise=0.2, bridge_mode="full"),
                         bridge_targets=proxies).projector.state_dict()
    assert all(torch.equal(plain[k], zero[k]) for k in plain)
    bridged = fit_projector(x, y, tm.TrainConfig(**base, bridge_weight=1.0),
                            bridge_targets=proxies).projector.state_dict()
    assert not all(torch.equal(plain[k], bridged[k]) for k in plain)


def test_bridge_targets_are_required_shaped_and_fingerprinted(tmp_path):
    x, y, proxies = _data()
    cfg = tm.TrainConfig(epochs=1, batch_size=64, bridge_weight=1.0)
    with pytest.raises(tm.DimensionMismatchError, match="bridge_targets"):
        fit_projector(x, y, cfg)
    with pytest.raises(tm.DimensionMismatchError, match="bridge_targets"):
        fit_projector(x, y, cfg, bridge_targets=proxies[:, 0])
    bad = proxies.clone()
    bad[3, 0, 0] = float("nan")
    with pytest.raises(tm.InvalidEmbeddingError, match="bridge targets"):
        fit_projector(x, y, cfg, bridge_targets=bad)
    fit_projector(x, y, cfg, checkpoint_dir=tmp_path / "c", bridge_targets=proxies)
    with pytest.raises(tm.TrainingCheckpointError, match="other data"):
        fit_projector(x, y, cfg, checkpoint_dir=tmp_path / "c", resume=True,
                      bridge_targets=proxies.flip(0))
    fit_projector(x, y, cfg, checkpoint_dir=tmp_path / "c", resume=True, bridge_targets=proxies)


# ------------------------------------------------------------------ training with a bridge
@pytest.fixture
def bridge_model(gapdemo, minilm):
    """A trained modality 'a' (gapdemo encoder, seed 3) to bridge through."""
    enc = tm.get_encoder("gapdemo", dim=16, seed=3)
    texts = descriptions(240, seed=1)
    offsets = tm.compute_offsets(enc, texts[:100], modal_samples(100))
    proj = tm.train_projector(enc, minilm, texts, offsets, tm.TrainConfig(epochs=2, batch_size=64),
                              cache=False)
    return tm.TextME(minilm).add_modality(enc, proj, offsets, name="a")


def test_bridged_bundle_round_trips_with_identical_embeddings(bridge_model, minilm, tmp_path):
    enc = tm.get_encoder("gapdemo", dim=16)
    texts = descriptions(240, seed=2)
    offsets = tm.compute_offsets(enc, texts[:100], modal_samples(100, seed=5))
    cfg = tm.TrainConfig(epochs=2, batch_size=64, bridge_weight=0.5, bridge_noise=0.01)
    proj = tm.train_projector(enc, minilm, texts, offsets, cfg, cache=False, bridge=bridge_model)
    assert set(proj.bridges) == {"a"} and proj.bridges["a"].n_texts == 240
    model = tm.TextME(minilm).add_modality(bridge_model.entry("a").encoder,
                                           bridge_model.entry("a").projector,
                                           bridge_model.entry("a").offsets, name="a")
    model.add_modality(enc, proj, offsets, name="b")
    recentring = tm.fit_recentring(model, "b", modal_samples(80, seed=6), texts[:80], cache=False)
    model.add_modality(enc, proj, offsets, name="b", recentring=recentring)

    path = model.save_pretrained(tmp_path / "bundle")
    mdir = path / "modalities/b"
    assert (mdir / "bridge.safetensors").is_file() and (mdir / "recentring.safetensors").is_file()
    assert not (path / "modalities/a/bridge.safetensors").exists()
    mcfg = json.loads((mdir / "config.json").read_text())
    assert mcfg["bridge"]["weight"] == 0.5 and mcfg["bridge"]["mode"] == "orthogonal"
    assert set(mcfg["bridge"]["modalities"]) == {"a"}
    assert mcfg["recentring"]["gap"] == pytest.approx(recentring.gap)
    card = (path / "README.md").read_text()
    assert "EmergentBridge through `a`" in card and "re-centred" in card

    loaded = tm.TextME.from_pretrained(path)
    x = modal_samples(20, seed=9)
    for m in ("a", "b"):
        np.testing.assert_array_equal(loaded.embed(x, modality=m), model.embed(x, modality=m))
    assert torch.equal(loaded.entry("b").bridges["a"].weight, proj.bridges["a"].weight)
    assert loaded.entry("b").bridge_info == {"weight": 0.5, "noise": 0.01, "mode": "orthogonal"}
    # re-centring is applied by embed, and can be turned off
    off = loaded.embed(x, modality="b", recentre=False)
    assert not np.allclose(off, loaded.embed(x, modality="b"))
    np.testing.assert_allclose(recentring.apply(torch.from_numpy(off)).numpy(),
                               loaded.embed(x, modality="b"), atol=1e-6)
    # saving the loaded model again keeps everything
    again = tm.TextME.from_pretrained(loaded.save_pretrained(tmp_path / "again"))
    np.testing.assert_array_equal(again.embed(x, modality="b"), model.embed(x, modality="b"))


def test_tampered_bridge_file_is_refused(bridge_model, tmp_path):
    entry = bridge_model.entry("a")
    r = AnchorRecentring(torch.zeros(384), F.normalize(torch.ones(384), dim=0), 3, 4)
    model = tm.TextME(bridge_model.anchor).add_modality(entry.encoder, entry.projector,
                                                        entry.offsets, name="a", recentring=r)
    path = model.save_pretrained(tmp_path / "b")
    f = path / "modalities/a/recentring.safetensors"
    data = bytearray(f.read_bytes())
    data[-2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(tm.BundleIntegrityError, match="sha256"):
        tm.TextME.from_pretrained(path)
    with pytest.raises(tm.DimensionMismatchError, match="re-centring"):
        model.add_modality(entry.encoder, entry.projector, entry.offsets, name="a",
                           recentring=AnchorRecentring(torch.zeros(8), torch.zeros(8)))


def test_a_bridge_with_another_anchor_is_refused_before_any_work(bridge_model, minilm, tmp_path):
    other = tm.get_anchor("sentence-transformers", model_id=str(tmp_path / "no-such-model"))
    enc = tm.get_encoder("gapdemo", dim=16)
    offsets = tm.Offsets.zeros(16)
    cfg = tm.TrainConfig(epochs=1, batch_size=8, bridge_weight=0.5)
    with pytest.raises(tm.AnchorMismatchError, match="anchor"):
        tm.train_projector(enc, other, descriptions(20), offsets, cfg, cache=False, bridge=bridge_model)
    assert not other.is_loaded and not enc.is_loaded


def test_bridge_arguments_are_checked(bridge_model, minilm, tmp_path):
    enc = tm.get_encoder("gapdemo", dim=16)
    offsets = tm.Offsets.zeros(16)
    texts = descriptions(20)
    with pytest.raises(tm.InvalidInputError, match="bridge_weight is 0"):
        tm.train_projector(enc, minilm, texts, offsets, tm.TrainConfig(), bridge=bridge_model)
    with pytest.raises(tm.InvalidInputError, match="needs a bridge"):
        tm.train_projector(enc, minilm, texts, offsets, tm.TrainConfig(bridge_weight=1.0))
    cfg = tm.TrainConfig(epochs=1, batch_size=8, bridge_weight=1.0)
    with pytest.raises(tm.UnknownModalityError, match="image"):
        tm.train_projector(enc, minilm, texts, offsets, cfg, bridge=bridge_model,
                           bridge_modalities=["image"])
    with pytest.raises(tm.MissingFileError):
        tm.train_projector(enc, minilm, texts, offsets, cfg, bridge=str(tmp_path / "nothing"))
    with pytest.raises(tm.UnknownModalityError, match="other than 'a'"):
        resolve_bridge(bridge_model, None, minilm, "a", cfg)


# ------------------------------------------------------------------------------------ CLI
def _cli(*args, ok=True):
    from typer.testing import CliRunner

    from textme_sdk.cli import get_app

    res = CliRunner().invoke(get_app(), [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output + repr(res.exception)
    return res


@pytest.fixture
def cli_files(tmp_path):
    (tmp_path / "texts.txt").write_text("\n".join(descriptions(200)))
    (tmp_path / "inputs.txt").write_text("\n".join(modal_samples(100)))
    return tmp_path


def test_cli_train_with_a_bridge(gapdemo, cli_files):
    f = cli_files
    common = ["--texts", f / "texts.txt", "--inputs", f / "inputs.txt", "--epochs", 1,
              "--batch-size", 64, "-e", "dim=16"]
    _cli("train", "gapdemo", *common, "--out", f / "bundle", "--name", "a", "-e", "seed=3")
    _cli("train", "gapdemo", *common, "--out", f / "bundle", "--name", "b", "--bridge", f / "bundle",
         "--bridge-modality", "a", "--bridge-weight", 0.3, "--bridge-noise", 0.01)
    cfg = json.loads((f / "bundle/modalities/b/config.json").read_text())
    assert cfg["bridge"]["weight"] == 0.3 and cfg["bridge"]["noise"] == 0.01
    assert cfg["bridge"]["loss"] == "centred"  # the CLI's default form
    assert list(cfg["bridge"]["modalities"]) == ["a"]
    assert "bridge" not in json.loads((f / "bundle/modalities/a/config.json").read_text())
    loaded = tm.TextME.from_pretrained(f / "bundle")
    assert set(loaded.entry("b").bridges) == {"a"}
    # default weight, all other modalities of the bridge
    _cli("train", "gapdemo", *common, "--out", f / "other", "--name", "c", "--bridge", f / "bundle")
    cfg = json.loads((f / "other/modalities/c/config.json").read_text())
    assert cfg["bridge"]["weight"] == 0.5 and set(cfg["bridge"]["modalities"]) == {"a", "b"}
    _cli("train", "gapdemo", *common, "--out", f / "third", "--name", "d", "--bridge", f / "bundle",
         "--bridge-loss", "cosine", "--bridge-mode", "full")
    cfg = json.loads((f / "third/modalities/d/config.json").read_text())
    assert "loss" not in cfg["bridge"] and cfg["bridge"]["mode"] == "full"  # as before the setting


def test_cli_bridge_errors_are_one_line_and_write_nothing(gapdemo, cli_files, tmp_path):
    f = cli_files
    common = ["--texts", f / "texts.txt", "--inputs", f / "inputs.txt", "--epochs", 1,
              "--batch-size", 64, "-e", "dim=16"]
    res = _cli("train", "gapdemo", *common, "--out", f / "b", "--bridge", f / "missing", ok=False)
    assert res.exit_code != 0 and "missing" in res.output and "Traceback" not in res.output
    res = _cli("train", "gapdemo", *common, "--out", f / "b", "--bridge-weight", 1, ok=False)
    assert res.exit_code != 0 and "--bridge BUNDLE" in res.output
    res = _cli("train", "gapdemo", *common, "--out", f / "b", "--bridge", f / "missing",
               "--bridge-mode", "sideways", ok=False)
    assert res.exit_code != 0 and "bridge_mode" in res.output
    _cli("train", "gapdemo", *common, "--out", f / "bundle", "--name", "a")
    res = _cli("train", "gapdemo", *common, "--out", f / "b", "--bridge", f / "bundle",
               "--bridge-modality", "image", ok=False)
    assert res.exit_code != 0 and "image" in res.output
    res = _cli("train", "gapdemo", *common, "--out", f / "b", "--bridge", f / "bundle",
               "--anchor", "sentence-transformers", "-a", f"model_id={tmp_path / 'other-model'}",
               ok=False)
    assert res.exit_code != 0 and "anchor" in res.output
    assert not (f / "b").exists()
