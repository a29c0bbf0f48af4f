"""The emergent-retrieval study (EmergentBridge, re-centring) at a tiny scale: structure, not values."""

from __future__ import annotations

import json

import pytest

from textme_reference import world
from textme_reference.bridging import VARIANTS, BridgeStudyConfig, _items, run_bridge_study
from textme_reference.demo import DemoConfig


def test_validation_items_are_disjoint_from_the_reported_ones():
    cfg = BridgeStudyConfig(demo=DemoConfig.quick(eval_items=50))
    test = _items("audio", 0, cfg)
    val = _items("audio", 0, BridgeStudyConfig(demo=cfg.demo, split="validation"))
    assert [it.caption for it in test] == [it.caption for it in world.sample_items("audio", 50, 0, "eval")]
    assert len(val) == 50 and not {id(v.data) for v in val} & {id(t.data) for t in test}
    assert all(not (v.data.shape == t.data.shape and (v.data == t.data).all()) for v in val for t in test[:5])


def test_cli_demo_bridge_prints_and_writes_the_table(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from textme_sdk.cli import get_app

    tiny = DemoConfig.quick
    monkeypatch.setattr(DemoConfig, "quick", classmethod(
        lambda cls, **kw: tiny(**{"offset_samples": 150, "eval_items": 80, **kw})))
    res = CliRunner().invoke(get_app(), ["demo", "--quick", "--bridge", "--out", str(tmp_path / "r"),
                                         "--train-texts", "300", "--epochs", "2"])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "r/bridging.md").read_text()
    assert table.count("\n| 0 |") == len(VARIANTS) and table.count("\n| 1 |") == len(VARIANTS)
    results = json.loads((tmp_path / "r/bridging.json").read_text())
    assert results["config"]["split"] == "test" and results["config"]["seeds"] == [0, 1]
    assert results["config"]["both_ways"] is True and results["config"]["bridge_loss"] == "centred"
    for rows in results["seeds"].values():
        assert list(rows) == list(VARIANTS)
        for row in rows.values():
            assert all(0 <= row[k] <= 100 for k in row if "residual gap" not in k)
        assert rows["recentring"]["image residual gap"] > 0
    assert "bridging.md" in res.output and "plain" in res.output


def test_one_way_study_retrains_only_the_bridged_modality():
    cfg = BridgeStudyConfig(seeds=(0,), variants=("plain", "orthogonal", "full"), both_ways=False,
                            bridge_loss="contrastive", demo=DemoConfig.quick(
                                offset_samples=150, eval_items=80, train_texts=300, epochs=2))
    results = run_bridge_study(cfg, log=lambda _: None)
    assert results["config"]["both_ways"] is False
    assert results["config"]["bridge_loss"] == "contrastive"
    rows = results["seeds"][0]
    for v in ("orthogonal", "full"):  # the image projector is the plain one
        assert rows[v]["image zero-shot top-1"] == rows["plain"]["image zero-shot top-1"]
        assert rows[v]["image T->X R@1"] == rows["plain"]["image T->X R@1"]


def _tiny(**kw):
    return BridgeStudyConfig(seeds=(0,), demo=DemoConfig.quick(
        offset_samples=150, eval_items=80, train_texts=300, epochs=2), **kw)


def test_sweep_reads_its_settings_and_fits_g_on_other_texts():
    from textme_reference.bridging import sweep_bridge

    rows = sweep_bridge(["centred:full:0.5:0.1", "cosine:orthogonal:0.5:0:both:fit=own"], _tiny(),
                        log=lambda _: None)["rows"]
    assert list(rows) == ["plain", "full centred w=0.5 noise=0.1",
                          "orthogonal cosine w=0.5 noise=0 both ways g fitted on bridge modality's own texts",
                          "recentring"]
    one_way = rows["full centred w=0.5 noise=0.1"]
    assert one_way["image T->X R@1"] == rows["plain"]["image T->X R@1"]


def test_asymmetry_of_plain_textme_is_its_own_reference():
    from textme_reference.bridging import asymmetry

    out = asymmetry(["plain"], _tiny())["plain"]
    assert out["audio centroid shift"] == 0
    assert out["audio->image R@1, plain centroid"] == pytest.approx(out["audio->image R@1"], abs=1e-6)
    assert out["image->audio R@1, plain centroid"] == pytest.approx(out["image->audio R@1"], abs=1e-6)
    assert 0 < out["audio centroid norm"] <= 1 and -1 <= out["class centroid cosine"] <= 1


def test_study_lambda_is_the_one_chosen_for_the_training_length():
    from textme_reference.bridging import BRIDGE_WEIGHT_BY_EPOCHS, BridgeStudyConfig, study_weight
    from textme_reference.demo import DemoConfig

    def at(epochs, **kw):
        return study_weight(BridgeStudyConfig(demo=DemoConfig(out_dir=None, epochs=epochs), **kw))

    assert at(10) == BRIDGE_WEIGHT_BY_EPOCHS[10] == 1.0
    assert at(30) == at(50) == BRIDGE_WEIGHT_BY_EPOCHS[30] == 0.3
    assert at(3) == 1.0 and at(20) == 1.0  # nearest measured length; ties go to the shorter
    assert at(30, bridge_weight=0.7) == 0.7
