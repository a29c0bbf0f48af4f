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
    results = run_demo(cfg, log=lambda msg: console.print(escape(msg), highlight=False))
    console.print(Markdown(format_tables(results)))
    if "search" in results:
        from .search_demo import format_search

        console.print(Markdown(format_search(results["search"])))
    console.print(f"report: {results['report']}  ({results['seconds']} s)")
