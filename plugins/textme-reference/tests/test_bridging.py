"""The emergent-retrieval study (EmergentBridge, re-centring) at a tiny scale: structure, not values."""

from __future__ import annotations

import json

from textme_reference import world
from textme_reference.bridging import VARIANTS, BridgeStudyConfig, _items
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
    for rows in results["seeds"].values():
        assert list(rows) == list(VARIANTS)
        for row in rows.values():
            assert all(0 <= row[k] <= 100 for k in row if "residual gap" not in k)
        # only the audio projector is trained with the bridge: image columns do not move
        for v in ("orthogonal", "full"):
            assert rows[v]["image zero-shot top-1"] == rows["plain"]["image zero-shot top-1"]
            assert rows[v]["image T->X R@1"] == rows["plain"]["image T->X R@1"]
        assert rows["recentring"]["image residual gap"] > 0
    assert "bridging.md" in res.output and "plain" in res.output
