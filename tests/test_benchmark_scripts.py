"""The benchmark tooling itself: ``run_all.py``'s one table of checks, and ``gpu_check.sh``
(syntax always; its CPU mode, which runs every step at toy sizes, in the slow suite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
from run_all import table  # noqa: E402


def test_run_all_prints_every_check_of_every_result(tmp_path):
    (tmp_path / "bench_a.json").write_text(json.dumps({"checks": [
        {"what": "speed-up", "value": 497.3, "unit": "x", "target": ">= 20", "met": True},
        {"what": "share", "value": 0.8, "unit": "fraction", "target": ">= 0.85", "met": False},
        {"what": "info", "value": 12, "unit": "s", "target": "-", "met": None},
        {"what": "rate", "value": 159292.4, "unit": "points/s", "target": "-", "met": None}]}))
    (tmp_path / "bench_b.json").write_text(json.dumps({"no": "checks"}))
    (tmp_path / "bench_c.json").write_text("{broken")
    out = table(tmp_path).splitlines()
    assert out[0] == "| benchmark | what | value | target | met |"
    assert "| bench_a | speed-up | 497.3 x | >= 20 | yes |" in out
    assert "| bench_a | share | 0.8 fraction | >= 0.85 | **NO** |" in out
    assert "| bench_a | info | 12 s | - | - |" in out
    assert "| bench_a | rate | 159,292 points/s | - | - |" in out
    assert any(line.startswith("| bench_c | unreadable result") for line in out)
    assert out[-1] == "(results without checks: bench_b)"


def test_every_benchmark_takes_json_and_reports_checks():
    for script in sorted(BENCH.glob("bench_*.py")):
        text = script.read_text()
        assert "--json" in text and '"checks"' in text, script.name


def test_gpu_check_script_parses():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    subprocess.run([bash, "-n", str(BENCH / "gpu_check.sh")], check=True)


@pytest.mark.slow
def test_gpu_check_cpu_mode_runs_every_step(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", str(BENCH / "gpu_check.sh"), "--cpu"], env=env,
                          capture_output=True, text=True, timeout=1800)
    summary = (tmp_path / "summary.txt").read_text()
    assert proc.returncode == 0, summary + proc.stdout[-3000:]
    steps = ["cuda-tests", "trainer", "encoders-fp16", "uni3d-fps", "embed-texts", "paper-train",
             "qwen3"]
    for name in steps:
        assert any(line.split()[:2] == [name, "ok"] for line in summary.splitlines()), summary
    for name in steps[1:]:
        assert json.loads((tmp_path / f"{name}.json").read_text())["checks"], name
    assert "| benchmark | what | value | target | met |" in proc.stdout


def test_engine_bench_counts_each_matmul_once_and_loads_an_older_engine():
    import torch

    import bench_engine
    from textme_sdk.engine import TrainConfig

    # b=2, d_in=3, hidden=5, d_out=7: 2*b*(15 + 35 + 14 + 14 + 35 + 35 + 15)
    assert bench_engine._step_flops(2, 3, 5, 7) == 4 * 163
    fit = bench_engine._trainer_from("HEAD")
    assert fit.__module__ == "textme_sdk._engine_at_rev.trainer"
    g = torch.Generator().manual_seed(0)
    res = fit(torch.randn(32, 8, generator=g), torch.randn(32, 16, generator=g),
              TrainConfig(epochs=1, batch_size=16, val_fraction=0.0, device="cpu"),
              show_progress_bar=False)
    assert res.steps == 2 and res.samples_per_second > 0
