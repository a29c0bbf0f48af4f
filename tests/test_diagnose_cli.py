"""`textme diagnose`: passes an encoder with a clean gap and flags an inconsistent one."""

import json

import pytest
from typer.testing import CliRunner

from textme_sdk.cli import get_app
from textme_sdk.diagnostics import diagnose, unpaired_geometry

CONCEPTS = ["dog", "cat", "car", "tree", "bird", "boat", "house", "horse", "fish", "lamp"]


@pytest.fixture
def pairs(tmp_path):
    texts = [f"a photo of a {c}" for c in CONCEPTS for _ in range(60)]
    inputs = [f"{c}#{i}" for c in CONCEPTS for i in range(60)]
    (tmp_path / "texts.txt").write_text("\n".join(texts))
    (tmp_path / "inputs.txt").write_text("\n".join(inputs))
    return tmp_path


def _run(*args):
    return CliRunner().invoke(get_app(), [str(a) for a in args])


def test_clean_gap_passes_and_inconsistent_gap_is_flagged(gapdemo, pairs):
    common = ["diagnose", "gapdemo", "--texts", pairs / "texts.txt", "--inputs",
              pairs / "inputs.txt", "--paired", "--strict"]
    clean = _run(*common, "-e", "gap=1.5", "--json", pairs / "clean.json")
    assert clean.exit_code == 0, clean.output
    assert "no warnings" in clean.output and "use offsets" in clean.output
    report = json.loads((pairs / "clean.json").read_text())
    assert report["gap_consistency"] > 0.9 and report["warnings"] == []
    assert report["paired"] and report["n_pairs"] == 600

    messy = _run(*common, "-e", "gap=0.4", "-e", "noise=1.0", "--json", pairs / "messy.json")
    assert messy.exit_code == 2, messy.output  # --strict: warnings fail the command
    report = json.loads((pairs / "messy.json").read_text())
    assert report["gap_consistency"] < 0.9
    assert report["recommendation"] == "compare with and without offsets"
    assert any("--no-offsets" in w for w in report["warnings"])
    assert "gap consistency" in messy.output


def test_unpaired_diagnosis_measures_what_needs_no_pairs(gapdemo, pairs):
    res = _run("diagnose", "gapdemo", "--texts", pairs / "texts.txt", "--inputs",
               pairs / "inputs.txt", "--json", pairs / "u.json")
    assert res.exit_code == 0, res.output
    report = json.loads((pairs / "u.json").read_text())
    assert not report["paired"] and report["n_text"] == 600 and report["n_modal"] == 600
    assert report["gap_norm"] > 1 and report["independence_split_half"] > 0.95
    assert report["gap_consistency"] != report["gap_consistency"]  # nan: needs pairs
    assert "needs pairs" in res.output


def test_offset_standard_error_flags_too_few_samples(gapdemo):
    import textme_sdk as tm

    enc = tm.get_encoder("gapdemo", gap=0.3, noise=1.0)
    few = diagnose(enc, [f"a {c}" for c in CONCEPTS[:4]], [f"{c}#1" for c in CONCEPTS[:4]])
    assert few.offset_relative_error > 0.1
    assert any("standard error" in w for w in few.warnings)
    t = enc.encode_text([f"a {c}" for c in CONCEPTS] * 100)
    x = enc.encode_modal([f"{c}#{i}" for c in CONCEPTS for i in range(100)])
    many = unpaired_geometry(t, x)
    assert many.offset_relative_error < few.offset_relative_error
    assert not any("standard error" in w for w in many.warnings)


def test_diagnose_needs_inputs(gapdemo):
    res = _run("diagnose", "gapdemo")
    assert res.exit_code != 0 and "--texts and --inputs" in res.output
