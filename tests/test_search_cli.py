"""`textme index` and `textme search` end to end on a small bundle (gapdemo encoder, MiniLM)."""

import json

import pytest
import torch

import textme_sdk as tm

pytest.importorskip("faiss")
from cli_runner import run  # noqa: E402


@pytest.fixture
def bundle(gapdemo, minilm, tmp_path):
    torch.manual_seed(0)
    offsets = tm.Offsets.from_embeddings(torch.randn(8, 16), torch.randn(8, 16))
    model = tm.TextME(minilm)
    model.add_modality(tm.get_encoder("gapdemo", dim=16), tm.Projector(16, 384), offsets)
    model.add_modality(tm.get_encoder("gapdemo", dim=16, seed=1), tm.Projector(16, 384), offsets,
                       name="other")
    model.save_pretrained(tmp_path / "bundle")
    (tmp_path / "items.txt").write_text("\n".join(f"{c}#{i}" for c in ("dog", "cat", "car")
                                                  for i in range(4)))
    (tmp_path / "more.txt").write_text("\n".join(f"tree#{i}" for i in range(3)))
    return tmp_path / "bundle"


def test_index_then_search_text_item_and_composed(bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    idx = tmp_path / "idx"
    out = run("index", bundle, tmp_path / "items.txt", "-m", "gapdemo", "--out", idx).output
    assert "indexed 12 gapdemo items with exact" in out
    out = run("index", bundle, tmp_path / "more.txt", "-m", "other", "--out", idx, "--append").output
    assert "15 items: gapdemo=12, other=3" in out
    hits = json.loads(run("search", idx, "a dog", "-k", "4", "--json").stdout)
    assert len(hits["hits"]) == 4 and hits["query"] == [{"input": "a dog", "modality": "text",
                                                          "weight": 1.0}]
    assert {h["modality"] for h in hits["hits"]} <= {"gapdemo", "other"}
    (tmp_path / "cat#2").write_text("")  # a query file (gapdemo reads its name)
    res = run("search", idx, "--query-file", "cat#2", "-m", "gapdemo", "--only", "other", "--json")
    assert {h["modality"] for h in json.loads(res.stdout)["hits"]} == {"other"}
    composed = json.loads(run("search", idx, "-q", "a car", "-f", "cat#2", "-m", "gapdemo",
                              "-w", "0.3", "-w", "1", "--json").stdout)
    assert [p["weight"] for p in composed["query"]] == [0.3, 1.0]
    table = run("search", idx, "a tree", "-k", "2").output
    assert "rank" in table and "score" in table


def test_index_with_faiss_backend_options_and_ids(bundle, tmp_path):
    (tmp_path / "ids.txt").write_text("\n".join(f"id{i}" for i in range(12)))
    run("index", bundle, tmp_path / "items.txt", "-m", "gapdemo", "--out", tmp_path / "f",
        "--backend", "faiss", "-o", "index_key=Flat", "--ids", tmp_path / "ids.txt")
    manifest = json.loads((tmp_path / "f" / "index.json").read_text())
    assert manifest["backend"] == "faiss" and manifest["backend_config"]["index_key"] == "Flat"
    hits = json.loads(run("search", tmp_path / "f", "a cat", "-k", "20", "--json").stdout)["hits"]
    assert len(hits) == 12 and all(h["id"].startswith("id") for h in hits)  # k > items: all


def test_cli_errors_are_one_line(bundle, tmp_path):
    res = run("search", tmp_path / "nothing", "a dog", ok=False)
    assert res.exit_code == 2 and "holds no textme index" in res.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    res = run("index", bundle, tmp_path / "items.txt", "-m", "gapdemo", "--out", tmp_path / "mine",
              ok=False)
    assert res.exit_code == 2 and "not a textme index" in res.output
    res = run("index", bundle, tmp_path / "missing*.txt", "-m", "gapdemo", "--out", tmp_path / "i",
              ok=False)
    assert res.exit_code == 2 and "matches no files" in res.output
    run("index", bundle, tmp_path / "items.txt", "-m", "gapdemo", "--out", tmp_path / "i")
    res = run("search", tmp_path / "i", "-f", "no-such.wav", "-m", "gapdemo", ok=False)
    assert res.exit_code == 2 and "does not exist" in res.output
    res = run("search", tmp_path / "i", "a", "-w", "1", "-w", "2", ok=False)
    assert res.exit_code == 2 and "--weight" in res.output
    res = run("search", tmp_path / "i", ok=False)
    assert res.exit_code == 2 and "QUERY" in res.output
