"""Run every benchmark in this folder and save the results under benchmarks/results/."""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
out = HERE / "results"
out.mkdir(exist_ok=True)
for script in sorted(HERE.glob("bench_*.py")):
    print(f"== {script.name}", flush=True)
    subprocess.run([sys.executable, str(script), "--json", str(out / f"{script.stem}.json")], check=True)
