"""The ``textme demo`` command, added to the ``textme`` CLI through the ``register_commands`` hook."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["demo_command"]


def demo_command(
    out: Path = typer.Option(Path("textme-report"), help="Report folder (markdown, JSON, plots, bundles)."),
    quick: bool = typer.Option(False, help="Scaled-down run (about a minute)."),
    train_texts: Optional[int] = typer.Option(None, help="Text descriptions per modality."),
    epochs: Optional[int] = typer.Option(None),
    seed: int = typer.Option(0),
    retrain: bool = typer.Option(False, "--retrain",
                                 help="Train the projectors again instead of reusing cached ones."),
    fewshot: bool = typer.Option(False, "--fewshot",
                                 help="Run the few-shot head study (UML) instead: OUT/fewshot.md."),
    bridge: bool = typer.Option(False, "--bridge",
                                help="Run the emergent-retrieval study instead: plain TextME vs "
                                     "EmergentBridge (orthogonal, full) vs anchor-space re-centring, "
                                     "seeds SEED and SEED+1; writes bridging.md/.json to OUT."),
) -> None:
    """Run text-only modality expansion end to end in the offline reference world."""
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.markup import escape

    from .demo import DemoConfig, format_tables, run_demo

    console = Console()
    cfg = DemoConfig.quick(out_dir=str(out), plots=True) if quick else DemoConfig(out_dir=str(out))
    cfg.seed = seed
    cfg.reuse_projectors = not retrain
    if train_texts:
        cfg.train_texts = train_texts
    if epochs:
        cfg.epochs = epochs
    if fewshot and bridge:
        raise typer.BadParameter("--fewshot and --bridge run two different studies: pass one")
    if fewshot:
        from .fewshot import FewShotConfig, format_fewshot, run_fewshot

        fcfg = FewShotConfig.quick(demo=cfg) if quick else FewShotConfig(demo=cfg)
        out_fs = run_fewshot(fcfg, lambda msg: console.print(escape(msg), highlight=False), out)
        console.print(Markdown(format_fewshot(out_fs)))
        console.print(f"report: {out_fs['report']}  ({out_fs['seconds']} s)")
        return
    if bridge:
        _bridge_study(cfg, out, seed, console)
        return
    results = run_demo(cfg, log=lambda msg: console.print(escape(msg), highlight=False))
    console.print(Markdown(format_tables(results)))
    if "search" in results:
        from .search_demo import format_search

        console.print(Markdown(format_search(results["search"])))
    console.print(f"report: {results['report']}  ({results['seconds']} s)")


def _bridge_study(cfg, out: Path, seed: int, console) -> None:
    """``textme demo --bridge``: the table of docs/bridging.md, from the public API."""
    import dataclasses
    import json

    from rich.markdown import Markdown
    from rich.markup import escape

    from .bridging import BridgeStudyConfig, format_bridge_table, run_bridge_study

    study = BridgeStudyConfig(seeds=(seed, seed + 1),
                              demo=dataclasses.replace(cfg, out_dir=None, plots=False))
    results = run_bridge_study(study, log=lambda msg: console.print(escape(msg), highlight=False))
    table = format_bridge_table(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bridging.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "bridging.md").write_text("# Emergent retrieval: EmergentBridge and re-centring\n\n"
                                     + table + "\n")
    console.print(Markdown(table))
    console.print(f"report: {out / 'bridging.md'}")
