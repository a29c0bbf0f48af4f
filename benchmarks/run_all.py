"""Run every benchmark (this folder and each plugin's ``benchmarks/``), save the results under
``benchmarks/results/``, and print one table of every check they report.

Each ``bench_*.py`` accepts ``--json PATH`` and writes a dict with a ``"checks"`` list:
``{"what", "value", "unit", "target", "met"}`` (``met`` is ``None`` for numbers without a
target). The table is built from every ``results/*.json``, so results written by an earlier or
partial run show up too (their file's date is printed).

Usage::

    python benchmarks/run_all.py                 # everything, full sizes (long on a CPU)
    python benchmarks/run_all.py --quick         # smaller sizes, same checks (minutes)
    python benchmarks/run_all.py --only engine memory
    python benchmarks/run_all.py --table         # only print the table of saved results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: What ``--quick`` passes to each script (smaller sizes; the same checks).
QUICK = {
    "bench_engine": ["--quick"],
    "bench_recipe": ["--quick", "--texts", "2000"],
    "bench_memory": ["--texts", "100000", "--big-texts", "200000", "--big-steps", "20", "--no-copy"],
    "bench_embed": ["--rounds", "2", "--calls", "16"],
    "bench_scaling": ["--texts", "4000"],
    "bench_search": ["--quick"],
    "bench_anchor": ["--texts", "512"],
    "bench_eval": ["--items", "2000"],
}


def scripts() -> list[Path]:
    return sorted(HERE.glob("bench_*.py")) + sorted(HERE.parent.glob("plugins/*/benchmarks/bench_*.py"))


def table(results: Path = RESULTS) -> str:
    """One markdown table of every check in ``results/*.json``."""
    rows = ["| benchmark | what | value | target | met |", "|---|---|---|---|---|"]
    missing = []
    for path in sorted(results.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            rows.append(f"| {path.stem} | unreadable result ({type(exc).__name__}) | | | no |")
            continue
        checks = data.get("checks") if isinstance(data, dict) else None
        if not checks:
            missing.append(path.stem)
            continue
        for c in checks:
            met = {True: "yes", False: "**NO**", None: "-"}.get(c.get("met"), str(c.get("met")))
            value = c.get("value")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.5g}"
            rows.append(f"| {path.stem} | {c.get('what', '?')} | {value} {c.get('unit', '')} | "
                        f"{c.get('target', '-')} | {met} |")
    if missing:
        rows.append("")
        rows.append(f"(results without checks: {', '.join(missing)})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (see QUICK)")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="run only these (e.g. engine memory, matching bench_NAME.py)")
    ap.add_argument("--table", action="store_true", help="only print the table of saved results")
    ap.add_argument("--keep-going", action="store_true", help="run the others when one fails")
    args = ap.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    failed = []
    if not args.table:
        for script in scripts():
            name = script.stem
            if args.only and name.removeprefix("bench_") not in args.only and name not in args.only:
                continue
            cmd = [sys.executable, str(script), "--json", str(RESULTS / f"{name}.json")]
            if args.quick:
                cmd += QUICK.get(name, [])
            print(f"== {script.relative_to(HERE.parent)} {' '.join(cmd[4:])}", flush=True)
            t = time.perf_counter()
            rc = subprocess.run(cmd, cwd=script.parent, stdout=subprocess.DEVNULL).returncode
            print(f"   {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t:.0f} s",
                  flush=True)
            if rc != 0:
                failed.append(name)
                if not args.keep_going:
                    break
    print()
    print(table())
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
