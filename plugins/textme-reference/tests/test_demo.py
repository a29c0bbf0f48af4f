"""A scaled-down run of the demo through the public API: orderings, not exact values."""

import pytest

from textme_reference.demo import DemoConfig, format_tables, run_demo


@pytest.fixture(scope="module")
def results():
    return run_demo(DemoConfig.quick(), log=lambda m: None)


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_offsets_make_zero_shot_work(results, modality):
    met = results["modalities"][modality]["metrics"]
    zs = {k: v["zero-shot top-1"] for k, v in met.items()}
    assert zs["textme"] > zs["no_offsets"] + 3, zs
    assert zs["textme"] > zs["naive"] + 3, zs
    assert zs["no_offsets"] > zs["naive"], zs  # the ordering: TextME > no offsets > naive
    assert zs["textme"] > 5 * 100 / 24, zs  # 24 classes: far above chance


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_offsets_matter_when_samples_rank_captions(results, modality):
    # a nearly constant shift barely changes which sample a caption prefers (T->X), but it
    # biases which caption a sample prefers (X->T), as it biases which class wins (zero-shot)
    met = results["modalities"][modality]["metrics"]
    xt = {k: v["X->T R@5"] for k, v in met.items()}
    assert xt["textme"] > xt["no_offsets"] + 5 and xt["no_offsets"] > xt["naive"] + 5, xt


@pytest.mark.parametrize("modality", ["image", "audio"])
def test_textme_keeps_most_of_the_pretrained_retrieval(results, modality):
    ppr = results["modalities"][modality]["ppr"]
    assert ppr["T->X R@5"] > 50 and ppr["zero-shot top-1"] > 50, ppr


def test_emergent_retrieval_far_above_chance(results):
    e = results["emergent"]
    assert e["image->audio R@1"] > 3 * e["chance R@1"]
    assert e["audio->image R@1"] > 3 * e["chance R@1"]


def test_report_lists_gap_geometry_and_ppr(results):
    for r in results["modalities"].values():
        g = r["geometry"]
        assert 0 < g["gap_norm"] < 2 and -1 <= g["gap_consistency"] <= 1
        assert set(r["ppr"]) == {"T->X R@1", "T->X R@5", "exact R@1", "exact R@5", "X->T R@1",
                                 "X->T R@5", "zero-shot top-1"}
        for met in r["metrics"].values():  # a sample's own caption is always relevant to it
            assert met["T->X R@5"] >= met["exact R@5"]
    table = format_tables(results)
    assert "PPR" in table and "emergent" in table


def test_cli_demo_writes_a_report(tmp_path):
    from typer.testing import CliRunner

    from textme_sdk.cli import get_app

    res = CliRunner().invoke(get_app(), ["demo", "--quick", "--out", str(tmp_path / "r"),
                                         "--train-texts", "1500", "--epochs", "5"])
    assert res.exit_code == 0, res.output
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"report.md", "results.json", "gap_image.png", "gap_audio.png", "bundles"} <= files
    import textme_sdk as tm

    bundle = tm.TextME.from_pretrained(tmp_path / "r/bundles/image")
    assert bundle.modalities == ["image"]


def test_second_run_reuses_the_trained_projectors(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTME_HOME", str(tmp_path / "home"))
    cfg = dict(modalities=("audio",), offset_samples=200, train_texts=400, eval_items=60,
               epochs=3, batch_size=64)
    first, second, again = [], [], []
    r1 = run_demo(DemoConfig.quick(**cfg), log=first.append)
    r2 = run_demo(DemoConfig.quick(**cfg), log=second.append)
    r3 = run_demo(DemoConfig.quick(reuse_projectors=False, **cfg), log=again.append)
    assert any("projectors trained" in m for m in first)
    assert any("projectors reused from the cache" in m for m in second)
    assert any("projectors trained" in m for m in again)
    assert r1["modalities"] == r2["modalities"] == r3["modalities"]
    assert len(list((tmp_path / "home" / "projectors").glob("*.safetensors"))) == 2  # with, without offsets
    # a different setting is a different projector
    run_demo(DemoConfig.quick(**{**cfg, "epochs": 2}), log=lambda m: None)
    assert len(list((tmp_path / "home" / "projectors").glob("*.safetensors"))) == 4


def test_a_damaged_cached_projector_is_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTME_HOME", str(tmp_path / "home"))
    cfg = dict(modalities=("audio",), offset_samples=200, train_texts=300, eval_items=40,
               epochs=2, batch_size=64)
    r1 = run_demo(DemoConfig.quick(**cfg), log=lambda m: None)
    for f in (tmp_path / "home" / "projectors").glob("*.safetensors"):
        f.write_bytes(b"not a safetensors file")
    messages = []
    r2 = run_demo(DemoConfig.quick(**cfg), log=messages.append)
    assert any("projectors trained" in m for m in messages)
    assert r1["modalities"] == r2["modalities"]


def test_demo_ends_with_one_index_over_both_modalities(results):
    s = results["search"]
    assert s["items"] == {"image": 300, "audio": 300}
    titles = [q["query"] for q in s["queries"]]
    assert titles[0].startswith("text") and "image->audio" in titles[1] and "audio->image" in titles[2]
    assert {h["modality"] for h in s["queries"][1]["hits"]} == {"audio"}
    assert {h["modality"] for h in s["queries"][2]["hits"]} == {"image"}
    for q in s["queries"]:
        scores = [h["score"] for h in q["hits"]]
        assert len(q["hits"]) == 5 and scores == sorted(scores, reverse=True)
    # emergent cross-modal hits are far above chance (1 in 24 classes): at least one right of 5
    assert sum(int(q["right"].split("/")[0]) for q in s["queries"]) >= 3
    from textme_reference.search_demo import format_search

    assert "one index, both modalities" in format_search(s)
