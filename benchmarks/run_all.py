"""Run every benchmark (this folder and each plugin's benchmarks/) and save the results under
benchmarks/results/."""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
out = HERE / "results"
out.mkdir(exist_ok=True)
scripts = sorted(HERE.glob("bench_*.py")) + sorted(HERE.parent.glob("plugins/*/benchmarks/bench_*.py"))
for script in scripts:
    print(f"== {script.relative_to(HERE.parent)}", flush=True)
    subprocess.run([sys.executable, str(script), "--json", str(out / f"{script.stem}.json")], check=True)
