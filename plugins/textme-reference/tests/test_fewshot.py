"""The reference world's few-shot study: every method, tuned on validation data only."""

import json

import pytest
import torch

from textme_reference import fewshot
from textme_reference.fewshot import METHODS, FewShotConfig, format_fewshot, run_fewshot


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("fewshot")
    return run_fewshot(FewShotConfig.quick(), log=lambda m: None, out_dir=out), out


def test_every_method_modality_and_k_is_reported(study):
    results, out = study
    for m in ("image", "audio"):
        assert list(results["results"][m]) == list(METHODS)
        for method, per_k in results["results"][m].items():
            assert list(per_k) == ["1", "4"]
            for r in per_k.values():  # the zero-shot head involves no shots: one run
                assert len(r["runs"]) == (1 if method == "zero-shot" else 2)
                assert 0 <= r["mean"] <= 100
    saved = json.loads((out / "fewshot.json").read_text())
    assert saved["results"] == json.loads(json.dumps(results["results"]))
    table = (out / "fewshot.md").read_text()
    assert "| UML (anchor) |" in table and "cross-modal (image shots + text)" in table


def test_text_helps_one_shot_heads(study):
    """The quick study already shows UML's point: one shot + text beats one shot alone."""
    r = study[0]["results"]
    for m in ("image", "audio"):
        assert r[m]["UML (anchor)"]["1"]["mean"] > r[m]["probe (anchor)"]["1"]["mean"]
        assert r[m]["UML (encoder, offsets)"]["1"]["mean"] > r[m]["probe (encoder)"]["1"]["mean"]


def test_checks_follow_the_numbers(study):
    results = study[0]
    for check in results["checks"]:
        m = check["what"].split(":")[0]
        r = results["results"][m]
        other = "probe (anchor)" if "probe" in check["what"] else "zero-shot"
        assert check["value"] == pytest.approx(r["UML (anchor)"]["1"]["mean"] - r[other]["1"]["mean"])
        assert check["met"] == (check["value"] >= (5 if other == "probe (anchor)" else 0))
    assert "| check |" in format_fewshot(results)


def test_tuning_never_sees_the_reported_shots_or_items():
    cfg = FewShotConfig()
    assert not set(cfg.tune_seeds) & set(range(cfg.seeds))
    labels = torch.arange(24).repeat(10)
    a = fewshot._draw(labels, 4, 0, 1)
    b = fewshot._draw(labels, 4, 100, 1)
    assert len(a) == 96 and not torch.equal(a, b)
    assert torch.equal(a, fewshot._draw(labels, 4, 0, 1))  # reproducible
