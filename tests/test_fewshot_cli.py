"""``textme fewshot``, ``textme predict`` and ``textme eval --shots`` (the few-shot protocol)."""

import json
import wave

import numpy as np
import pytest
import torch

import textme_sdk as tm
from textme_sdk.evaluation import ClassificationSet
from textme_sdk.evaluation.fewshot import FEWSHOT_METHODS, fewshot_scores

from cli_runner import run  # noqa: E402
CLASSES = ["dog", "cat", "car", "piano"]


@pytest.fixture
def bundle(gapdemo, minilm, tmp_path):
    enc = tm.get_encoder("gapdemo", dim=16)
    offsets = tm.Offsets.from_embeddings(enc.encode_text([f"a {c}" for c in CLASSES]),
                                         enc.encode_modal([f"{c}#u" for c in CLASSES]))
    torch.manual_seed(0)
    model = tm.TextME(minilm).add_modality(enc, tm.Projector(16, 384), offsets)
    return model.save_pretrained(tmp_path / "bundle")


def test_fewshot_then_predict(bundle, tmp_path):
    shots = tmp_path / "shots.csv"
    shots.write_text("path,label\n" + "".join(f"{c}#{i},{c}\n" for c in CLASSES for i in range(2)))
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps({c: [f"a photo of a {c}", c] for c in CLASSES}))
    head = tmp_path / "head"
    out = run("fewshot", bundle, "-m", "gapdemo", "--shots", shots, "--class-texts", texts,
              "--space", "encoder", "--steps", 40, "--out", head).output
    assert "4 classes" in out and "8 gapdemo shots" in out
    assert sorted(p.name for p in head.iterdir()) == ["config.json", "head.safetensors"]
    items = tmp_path / "items.txt"
    items.write_text("dog#77\npiano#77\n")
    rows = json.loads(run("predict", head, items, "-m", "gapdemo", "--json").output)
    assert [r["label"] for r in rows] == ["dog", "piano"]
    assert all(0 < r["probability"] <= 1 for r in rows)
    assert "dog" in run("predict", head, items, "-m", "gapdemo").output

    # a head inside a bundle finds its bundle
    model = tm.TextME.from_pretrained(bundle)
    model.add_head("pets", tm.ClassifierHead.from_pretrained(head)).save_pretrained(bundle)
    rows = json.loads(run("predict", bundle / "heads" / "pets", items, "-m", "gapdemo",
                          "--json").output)
    assert [r["label"] for r in rows] == ["dog", "piano"]


def test_fewshot_errors_are_one_line(bundle, tmp_path):
    shots = tmp_path / "shots.csv"
    shots.write_text("dog#1,dog\ncat#1,cat\n")
    texts = tmp_path / "texts.csv"
    texts.write_text("label,text\ndog,a dog\n")
    res = run("fewshot", bundle, "-m", "gapdemo", "--shots", shots, "--class-texts", texts,
              "--out", tmp_path / "h", ok=False)
    assert res.exit_code == 2 and "shots but no text" in res.output
    assert not (tmp_path / "h").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("dog#1\n")
    res = run("fewshot", bundle, "-m", "gapdemo", "--shots", bad, "--out", tmp_path / "h", ok=False)
    assert res.exit_code == 2 and "expected path,label" in res.output
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.txt").write_text("x")
    res = run("fewshot", bundle, "-m", "gapdemo", "--shots", shots, "--out", tmp_path / "taken",
              ok=False)
    assert res.exit_code == 2 and "does not hold a classifier head" in res.output
    res = run("predict", tmp_path, shots, "-m", "gapdemo", ok=False)
    assert res.exit_code == 2 and "not a classifier head" in res.output


# ------------------------------------------------------------------------- the protocol
def _set(items, labels, multilabel=False):
    return ClassificationSet("toy", "gapdemo", items, list(CLASSES), torch.as_tensor(labels),
                             multilabel=multilabel, domain="image")


def test_fewshot_scores_structure_and_seeds(bundle):
    model = tm.TextME.from_pretrained(bundle)
    pool = _set([f"{c}#p{i}" for c in CLASSES for i in range(6)],
                [j for j in range(4) for _ in range(6)])
    test = _set([f"{c}#t{i}" for c in CLASSES for i in range(5)],
                [j for j in range(4) for _ in range(5)])
    cfg = tm.HeadConfig(steps=20)
    scores = fewshot_scores(model, "gapdemo", pool, test, [1, 2], seeds=3, config=cfg, cache=False)
    assert list(scores) == ["1", "2"] and set(scores["1"]) == set(FEWSHOT_METHODS)
    for k in scores:
        for m, r in scores[k].items():
            assert len(r["runs"]) == 3 and r["mean"] == pytest.approx(np.mean(r["runs"]))
    assert scores["1"]["zero-shot"]["std"] == 0.0  # no shots involved
    assert scores["2"]["pretrained probe"]["mean"] == 100.0  # gapdemo's classes are separable
    # without a test set, the shots are left out of the items tested
    alone = fewshot_scores(model, "gapdemo", pool, None, [5], seeds=1, config=cfg, cache=False)
    assert alone["5"]["uml"]["runs"][0] in (0.0, 25.0, 50.0, 75.0, 100.0)  # 4 items left
    with pytest.raises(tm.InvalidInputError, match="K >= 1"):
        fewshot_scores(model, "gapdemo", pool, test, [0], cache=False)
    multi = _set(pool.items, torch.eye(4, dtype=torch.bool).repeat_interleave(6, 0), True)
    with pytest.raises(tm.InvalidInputError, match="multi-label"):
        fewshot_scores(model, "gapdemo", multi, None, [1], cache=False)


def _write_wav(path, wav):
    pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(8000)
        f.writeframes(pcm.tobytes())


def test_eval_shots_on_an_esc50_layout(minilm, tmp_path):
    """ESC-50's protocol: shots from the other folds; the report gains the few-shot table."""
    pytest.importorskip("textme_reference")
    from textme_reference import world

    names = ["dog", "bell", "clock"]
    items = [it for it in world.sample_items("audio", 120, seed=9, split="eval") if it.label in names]
    root = tmp_path / "esc50"
    (root / "audio").mkdir(parents=True)
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for i, it in enumerate(items):
        name = f"{i % 5 + 1}-{i}-A-{names.index(it.label)}.wav"
        _write_wav(root / "audio" / name, it.data)
        rows.append(f"{name},{i % 5 + 1},{names.index(it.label)},{it.label},False,{i},A")
    (root / "meta").mkdir()
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    enc = tm.get_encoder("ref-audio")
    torch.manual_seed(0)
    offsets = tm.Offsets.from_embeddings(enc.encode_text([f"the sound of a {n}" for n in names]),
                                         enc.encode_modal([it.data for it in items[:20]]))
    bundle = tm.TextME(minilm).add_modality(enc, tm.Projector(48, 384), offsets) \
        .save_pretrained(tmp_path / "bundle")
    out = run("eval", bundle, "--task", "esc50", "--data", root, "--shots", 1, "--shots", 2,
              "--shot-seeds", 2, "-o", "fold=1", "--json", tmp_path / "r.json", "--no-cache").output
    assert "few-shot top-1" in out and "K=2" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["fewshot"]) == {"1", "2"}
    assert len(report["fewshot"]["1"]["uml"]["runs"]) == 2
    assert any("other folds" in n for n in report["notes"])
    res = run("eval", bundle, "--task", "esc50", "--data", root, "--shots", 0, ok=False)
    assert res.exit_code == 2 and "K >= 1" in res.output


def test_read_shots_from_class_folders_and_texts_from_csv(tmp_path):
    from textme_sdk.cli.fewshot import read_class_texts, read_shots

    for label in ("cat", "dog"):
        (tmp_path / "shots" / label).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "shots" / label / f"{i}.png").write_bytes(b"")
    (tmp_path / "shots" / "dog" / "notes.txt").write_text("not an image")
    items, labels = read_shots(tmp_path / "shots", (".png",))
    assert labels == ["cat", "cat", "dog", "dog"] and all(i.endswith(".png") for i in items)
    csv_path = tmp_path / "s.csv"
    csv_path.write_text("shots/cat/0.png,cat\nshots/dog/9.png,dog\n")
    with pytest.raises(tm.MissingInputFileError, match="row 2"):
        read_shots(csv_path, (".png",))
    texts = tmp_path / "t.csv"
    texts.write_text("label,text\ncat,a cat, sleeping\ncat,a kitten\ndog,a dog\n")
    assert read_class_texts(texts) == {"cat": ["a cat, sleeping", "a kitten"], "dog": ["a dog"]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(tm.InvalidInputError, match="class sub-folders"):
        read_shots(tmp_path / "empty", (".png",))
