"""The ``textme`` command line. It only calls the public API."""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from textme_sdk.errors import InvalidInputError

console = Console()
err = Console(stderr=True)

#: Exit codes: 2 for a problem with the inputs, options or environment (one line names it and
#: the fix), 1 for an internal error (``--debug`` or ``TEXTME_DEBUG=1`` shows the traceback),
#: 130 when interrupted.
EXIT_USER, EXIT_INTERNAL, EXIT_INTERRUPTED = 2, 1, 130


_debug_flag = False  # --debug of the running command


def _debug() -> bool:
    return _debug_flag or os.environ.get("TEXTME_DEBUG", "") not in ("", "0")


def _os_error_line(exc: OSError) -> str:
    where = f" {exc.filename!r}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return (f"no space left on the device writing{where}: free some space or write to "
                "another disk; what was written before is intact")
    if isinstance(exc, PermissionError):
        return f"permission denied for{where or ' a file'}: choose a path you may write to"
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return f"{exc.strerror or exc}:{where}; check the path"
    return f"{exc.strerror or exc}{where and ':' + where}"


class _ErrorsAsLines(TyperGroup):
    """Every command's errors end as one line and an exit code, never a bare traceback."""

    def invoke(self, ctx):  # noqa: ANN001 - click's signature
        from textme_sdk.errors import TextMEError

        try:
            return super().invoke(ctx)
        except Exception as exc:
            if type(exc).__module__.startswith(("typer", "click")):
                raise  # usage errors, Exit and Abort: click prints and exits (code 2 for usage)
            if _debug():
                traceback.print_exc()
            if isinstance(exc, TextMEError):
                code, line = EXIT_USER, str(exc)
            elif isinstance(exc, OSError):
                code, line = EXIT_USER, _os_error_line(exc)
            else:
                code = EXIT_INTERNAL
                line = (f"internal error ({type(exc).__name__}: {exc}); rerun with --debug for "
                        "the traceback and report it")
            err.print(f"[red]error:[/red] {_escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="textme",
    help="Text-only modality expansion: bridge encoders into one text-embedding space.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_ErrorsAsLines,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors.")) -> None:
    """Text-only modality expansion: bridge encoders into one text-embedding space."""
    global _debug_flag
    _debug_flag = debug


# ----------------------------------------------------------------------------- input helpers
def parse_kv(pairs: list[str] | None) -> dict[str, Any]:
    """``["dim=16", "name=x"]`` -> ``{"dim": 16, "name": "x"}`` (values parsed as JSON if they can be)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _read_lines(path: Path, what: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); convert it, e.g. "
            f"iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a folder; pass a {what} file") from None


def read_texts(path: Path, column: str | None = None, limit: int | None = None) -> list[str]:
    """Texts from a .txt (one per line), .csv/.tsv/.jsonl or .parquet file (UTF-8)."""
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist")
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; pass a text file (.txt/.csv/.parquet)")
    suffix = path.suffix.lower()
    if suffix in (".txt", ""):
        texts = [line.strip() for line in _read_lines(path, "text")]
        texts = [t for t in texts if t]
    else:
        readers = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet",
                   ".jsonl": "read_json"}
        if suffix not in readers:
            raise InvalidInputError(f"{path}: use .txt, .csv, .tsv, .jsonl or .parquet")
        try:
            import pandas as pd
        except ImportError:
            raise InvalidInputError(
                f"{path}: reading {suffix} files needs pandas: pip install 'textme-sdk[train]'"
            ) from None
        options = {".tsv": {"sep": "\t"}, ".jsonl": {"lines": True}}.get(suffix, {})
        try:
            df = getattr(pd, readers[suffix])(path, **options)
        except ImportError as exc:
            raise InvalidInputError(f"{path}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path} is not UTF-8 text ({exc.reason}); convert it") from None
        except (ValueError, OSError) as exc:  # pandas parser errors are ValueErrors
            raise InvalidInputError(f"{path} could not be read as {suffix}: {exc}") from None
        col = column or next((c for c in ("caption", "text", "description", "sentence")
                              if c in df.columns), None)
        if col is None or col not in df.columns:
            raise InvalidInputError(
                f"{path}: no text column found (columns: {list(df.columns)}); pass --text-column")
        texts = [str(t) for t in df[col].dropna().tolist()]
    if not texts:
        raise InvalidInputError(f"{path} holds no texts")
    return texts[:limit] if limit else texts


def read_inputs(path: Path, extensions: tuple[str, ...], limit: int | None = None) -> list[str]:
    """Modal inputs: the matching files of a folder (sorted), or the lines of a list file."""
    if path.is_dir():
        exts = {e.lower() for e in extensions}
        items = sorted(str(p) for p in path.rglob("*")
                       if p.is_file() and (not exts or p.suffix.lower() in exts))
    elif path.exists():
        items = [line.strip() for line in _read_lines(path, "list") if line.strip()]
    else:
        raise InvalidInputError(f"{path} does not exist")
    if not items:
        raise InvalidInputError(f"no inputs found in {path}"
                                 + (f" (looked for {', '.join(extensions)})" if extensions else ""))
    return items[:limit] if limit else items


def check_output_file(path: Path, suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse, before any work, an output file path that cannot be written; create its folder."""
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; pass a file name for the output")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InvalidInputError(f"{path}: the output must end in {' or '.join(suffixes)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the folder of {path}: {exc.strerror}") from None
    if not os.access(path.parent, os.W_OK):
        raise InvalidInputError(f"{path.parent} is not writable; choose another output path")
    return path


def check_bundle_out(path: Path) -> bool:
    """Whether ``path`` holds a bundle to extend; refuse (before any work) anything else there.

    A missing or empty folder becomes a new bundle; a folder with a bundle is extended; a file,
    or a folder of other things, is refused (``OutputExistsError``) - it is never replaced.
    """
    from textme_sdk.bundle import check_save_target

    return check_save_target(path) is not None


def check_on_error(value: str) -> None:
    """``--on-error`` is 'raise' or 'skip'."""
    if value not in ("raise", "skip"):
        raise InvalidInputError(f"--on-error must be 'raise' or 'skip', got {value!r}")


def report_skipped(items: list[Any], skipped: list[tuple[int, str]]) -> None:
    """List the inputs ``--on-error skip`` left out, on stderr."""
    if not skipped:
        return
    err.print(f"[yellow]skipped {len(skipped)} of {len(items)} inputs that could not be read:"
              "[/yellow]", highlight=False)
    for i, why in skipped[:20]:
        err.print(f"  {_escape(str(items[i]))}: {_escape(why)}", highlight=False, soft_wrap=True)
    if len(skipped) > 20:
        err.print(f"  ... and {len(skipped) - 20} more", highlight=False)


def read_offsets(path: Path) -> Any:
    """Offsets written by ``textme offsets`` (typed error for anything else)."""
    import textme_sdk as tm

    return tm.Offsets.load(path)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _fail(exc: Exception) -> None:
    err.print(f"[red]error:[/red] {_escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USER)


# ---------------------------------------------------------------------------------- commands
@app.command("plugins")
def plugins_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List installed plugins, their encoders and anchors, and plugins that failed to load."""
    import textme_sdk as tm

    rows = tm.plugin_status()
    encoders = {r.name: r for r in tm.list_encoders()}
    anchors = {r.name: r for r in tm.list_anchors()}
    if as_json:
        for row in rows:
            row["encoder_info"] = {n: {"modality": encoders[n].modality, **_meta(encoders[n])}
                                   for n in row["encoders"]}
            row["anchor_info"] = {n: _meta(anchors[n]) for n in row["anchors"]}
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("plugin", "source", "provides", "licence", "status")
    for row in rows:
        provides = [f"{n} ({encoders[n].modality})" for n in row["encoders"]] + [
            f"{n} (anchor)" for n in row["anchors"]]
        licences = {(encoders.get(n) or anchors.get(n)).metadata.get("license") or ""
                    for n in row["encoders"] + row["anchors"]} - {""}
        status = f"[red]failed: {row['error']}[/red]" if row.get("error") else "[green]ok[/green]"
        table.add_row(row["plugin"], row["source"], "\n".join(provides) or "-",
                      ", ".join(sorted(licences)) or "-", status)
    console.print(table)


def _meta(reg: Any) -> dict[str, Any]:
    return {k: v for k, v in reg.metadata.items() if isinstance(v, (str, int, float, bool))}


@app.command("offsets")
def offsets_cmd(
    encoder: str = typer.Argument(..., help="Registered encoder name (see `textme plugins`)."),
    texts: Path = typer.Option(..., help="Text file of descriptions (.txt/.csv/.parquet)."),
    inputs: Path = typer.Option(..., help="Folder of modal files, or a list file (one input per line)."),
    out: Path = typer.Option(Path("offsets.safetensors"), help="Where to write the offsets."),
    limit: int = typer.Option(5000, min=1, help="Samples of each kind (the paper uses 5,000)."),
    encoder_arg: Optional[list[str]] = typer.Option(None, "--encoder-arg", "-e", help="KEY=VALUE for the encoder."),
    text_column: Optional[str] = typer.Option(None, help="Column holding the texts in csv/parquet."),
    batch_size: int = typer.Option(64, min=1),
    on_error: str = typer.Option("raise", help="An unreadable input: 'raise' stops, 'skip' leaves it out (listed)."),
) -> None:
    """Compute the modality offsets (mu_text, mu_modal) of an encoder from unpaired samples."""
    import textme_sdk as tm

    check_on_error(on_error)
    check_output_file(out, (".safetensors",))
    corpus = read_texts(texts, text_column, limit)
    enc = tm.get_encoder(encoder, **parse_kv(encoder_arg))
    items = read_inputs(inputs, enc.input_spec.file_extensions, limit)
    offsets = tm.compute_offsets(enc, corpus, items, batch_size, on_error=on_error)
    report_skipped(items, offsets.skipped)
    offsets.save(out)
    console.print(f"offsets of [bold]{encoder}[/bold]: gap {offsets.gap:.4f} from "
                  f"{offsets.n_text} texts / {offsets.n_modal} inputs -> {out}")


@app.command("train")
def train_cmd(
    encoder: str = typer.Argument(..., help="Registered encoder name."),
    texts: Path = typer.Option(..., help="Training descriptions (.txt/.csv/.parquet); text only."),
    out: Path = typer.Option(..., help="Bundle folder to write (an existing bundle gains the modality)."),
    inputs: Optional[Path] = typer.Option(None, help="Unpaired modal inputs for the offsets."),
    offsets: Optional[Path] = typer.Option(None, help="Offsets from `textme offsets` instead of --inputs."),
    anchor: str = typer.Option("minilm", help="Anchor name (a new bundle only)."),
    anchor_arg: Optional[list[str]] = typer.Option(None, "--anchor-arg", "-a", help="KEY=VALUE for the anchor."),
    encoder_arg: Optional[list[str]] = typer.Option(None, "--encoder-arg", "-e", help="KEY=VALUE for the encoder."),
    name: Optional[str] = typer.Option(None, help="Modality name in the bundle (default: the encoder's)."),
    offset_samples: int = typer.Option(5000, min=1, help="Samples per centroid."),
    epochs: int = typer.Option(50, min=1),
    batch_size: int = typer.Option(512, min=2),
    lr: float = typer.Option(5e-4),
    seed: int = typer.Option(0, min=0),
    hidden_dim: Optional[int] = typer.Option(None, min=1, help="Projector width (default: the encoder's dimension, as in the paper)."),
    input_noise: float = typer.Option(0.0, help="Gaussian noise on training inputs (0 = the paper; helps small templated corpora)."),
    text_column: Optional[str] = typer.Option(None),
    resume: bool = typer.Option(False, help="Resume an interrupted run (state in .OUT.checkpoints/MODALITY beside OUT)."),
    no_offsets: bool = typer.Option(False, help="Ablation: train without centring (Table 3)."),
    on_error: str = typer.Option("raise", help="An unreadable --inputs item: 'raise' stops, 'skip' leaves it out (listed, and recorded in the bundle)."),
    bridge: Optional[str] = typer.Option(None, help="EmergentBridge: a trained bundle (folder or Hub id, same anchor) whose modalities guide this one (docs: bridging)."),
    bridge_modality: Optional[list[str]] = typer.Option(None, "--bridge-modality", help="Bridge through this modality of --bridge (repeatable; default: all its others)."),
    bridge_weight: Optional[float] = typer.Option(None, help="Weight lambda of the bridge term (default 0.5 with --bridge)."),
    bridge_noise: float = typer.Option(0.0, help="Noise std of the bridge anchor."),
    bridge_mode: str = typer.Option("orthogonal", help="orthogonal (EmergentBridge) or full (ablation)."),
    bridge_loss: str = typer.Option("centred", help="Form of the bridge term: centred, cosine, contrastive, angular or angular-centred (docs: bridging)."),
) -> None:
    """Compute offsets, train a projector on text only, and write (or extend) a bundle."""
    import textme_sdk as tm
    from textme_sdk.bundle import check_modality_name

    # everything that can be checked is checked before any model loads
    check_on_error(on_error)
    if name is not None:
        check_modality_name(name)
    if bridge is None and (bridge_modality or bridge_weight is not None):
        raise InvalidInputError("--bridge-modality and --bridge-weight need --bridge BUNDLE")
    cfg = tm.TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                         hidden_dim=hidden_dim, input_noise=input_noise,
                         bridge_weight=(0.5 if bridge_weight is None else bridge_weight) if bridge else 0.0,
                         bridge_noise=bridge_noise, bridge_mode=bridge_mode,
                         bridge_loss=bridge_loss if bridge else "cosine")
    extend = check_bundle_out(out)
    if inputs is None and offsets is None and not no_offsets:
        raise InvalidInputError("pass --inputs (unpaired modal samples), --offsets FILE or "
                                "--no-offsets")
    offs = read_offsets(offsets) if offsets is not None and not no_offsets else None
    if inputs is not None and offs is None and not no_offsets and not inputs.exists():
        raise InvalidInputError(f"--inputs {inputs} does not exist")
    corpus = read_texts(texts, text_column)
    enc = tm.get_encoder(encoder, **parse_kv(encoder_arg))
    modality = check_modality_name(name or enc.modality)
    model = (tm.TextME.from_pretrained(out) if extend
             else tm.TextME(tm.get_anchor(anchor, **parse_kv(anchor_arg))))
    if bridge is not None:  # loads only the bridge's small weights; checks its anchor
        from textme_sdk.training import resolve_bridge

        bridge_model, _ = resolve_bridge(bridge, bridge_modality, model.anchor, modality, cfg)
    try:
        if no_offsets:
            offs = tm.Offsets.zeros(enc.embedding_dim)
        elif offs is None:
            items = read_inputs(inputs, enc.input_spec.file_extensions, offset_samples)
            offs = tm.compute_offsets(enc, corpus[:offset_samples], items, on_error=on_error)
            report_skipped(items, offs.skipped)
        projector = tm.train_projector(enc, model.anchor, corpus, offs, cfg,
                                       checkpoint_dir=out.parent / f".{out.name}.checkpoints"
                                       / modality,
                                       resume=resume,
                                       bridge=bridge_model if bridge is not None else None,
                                       bridge_modalities=bridge_modality)
    except tm.TrainingInterrupted as exc:
        err.print(f"[yellow]{exc}[/yellow]\nrerun the same command with --resume to continue")
        raise typer.Exit(EXIT_INTERRUPTED)
    info = {"training": {**projector.training_result.summary(), "n_texts": len(corpus),
                         "texts": str(texts)},
            "offsets": {"texts": str(texts), "inputs": str(inputs or offsets)}}
    if offs.skipped:
        info["offsets"].update(skipped=len(offs.skipped),
                               skipped_inputs=[items[i] for i, _ in offs.skipped[:20]])
    model.add_modality(enc, projector, offs, name=name, info=info)
    model.save_pretrained(out)
    s = projector.training_result.summary()
    console.print(f"trained [bold]{modality}[/bold] in {s['seconds']}s "
                  f"(best epoch {s['best_epoch']}, held-out R@1 {s['best_val_r1']}) -> {out}")


@app.command("embed")
def embed_cmd(
    bundle: str = typer.Argument(..., help="Bundle folder or Hub repo id."),
    items: list[str] = typer.Argument(..., help="Inputs (texts, file paths, ...)."),
    modality: str = typer.Option("text", "--modality", "-m"),
    out: Optional[Path] = typer.Option(None, help="Write a .npy file instead of printing."),
    batch_size: int = typer.Option(32, min=1),
    on_error: str = typer.Option("raise", help="An unreadable input: 'raise' stops, 'skip' leaves its row out (listed on stderr)."),
) -> None:
    """Embed inputs of one modality into the bundle's anchor space."""
    import numpy as np

    import textme_sdk as tm

    check_on_error(on_error)
    if out is not None:
        check_output_file(out, (".npy",))
    model = tm.TextME.from_pretrained(bundle, modalities=[] if modality == "text" else [modality])
    if on_error == "skip" and modality != "text":
        part = model.entry(modality).encoder.encode_modal_skipping(list(items), batch_size)
        report_skipped(list(items), part.skipped)
        emb = model.project(part.embeddings, modality).numpy() if part.kept else np.empty((0, 0))
        if not part.kept:
            raise InvalidInputError("none of the inputs could be read; see the skipped list above")
    else:
        emb = model.embed(list(items), modality=modality, batch_size=batch_size)
    if out is not None:
        np.save(out, emb)
        console.print(f"{emb.shape[0]} x {emb.shape[1]} embeddings -> {out}")
    else:
        np.savetxt(sys.stdout, emb, fmt="%.6f")


@app.command("embed-texts")
def embed_texts_cmd(
    texts: Path = typer.Argument(..., help="Texts (.txt one per line, .csv/.tsv/.jsonl/.parquet)."),
    anchor: Optional[str] = typer.Option(None, help="Anchor to embed with (e.g. minilm, qwen3)."),
    encoder: Optional[str] = typer.Option(None, help="Or an encoder, whose text branch embeds."),
    anchor_arg: Optional[list[str]] = typer.Option(None, "--anchor-arg", "-a", help="KEY=VALUE for the anchor."),
    encoder_arg: Optional[list[str]] = typer.Option(None, "--encoder-arg", "-e", help="KEY=VALUE for the encoder."),
    role: str = typer.Option("document", help="Anchor prompt role: document (training) or query."),
    text_column: Optional[str] = typer.Option(None, help="Column holding the texts in csv/parquet."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the first N texts."),
    cache: Optional[Path] = typer.Option(None, help="Cache folder (default $TEXTME_HOME/embeddings); shared by all processes."),
    batch_size: int = typer.Option(128, min=1),
    chunk_size: int = typer.Option(8192, min=1, help="Texts per resumable chunk and per shard."),
    out: Optional[Path] = typer.Option(None, help="Also write the matrix to a .npy or .safetensors file."),
) -> None:
    """Embed a text file into the embedding cache that training reads; resumable and shardable.

    Runs unchanged under `torchrun --nproc-per-node N -m textme_sdk.cli embed-texts ...` or
    `accelerate launch -m textme_sdk.cli embed-texts ...`: each process embeds its share of the
    chunks and rank 0 merges them into one cache entry. Rerun the same command to resume.
    """
    import time

    import textme_sdk as tm
    from textme_sdk.extraction import (
        cache_key,
        distributed_context,
        extract_text_embeddings,
        save_embeddings,
    )

    if (anchor is None) == (encoder is None):
        raise InvalidInputError("pass exactly one of --anchor NAME or --encoder NAME")
    if out is not None:
        check_output_file(out, (".npy", ".safetensors"))
    ctx = distributed_context()
    try:
        model = (tm.get_anchor(anchor, **parse_kv(anchor_arg)) if anchor is not None
                 else tm.get_encoder(encoder, **parse_kv(encoder_arg)))
        corpus = read_texts(texts, text_column, limit)
        start = time.perf_counter()
        store = tm.EmbeddingCache(cache)
        emb = extract_text_embeddings(model, corpus, role, store, batch_size, chunk_size,
                                      context=ctx)
        seconds = time.perf_counter() - start
    except tm.TextMEError as exc:
        ctx.close()
        _fail(exc)
    if ctx.is_main:
        if out is not None:
            save_embeddings(out, emb)
        console.print(f"{emb.shape[0]} x {emb.shape[1]} embeddings of {texts} with "
                      f"[bold]{model.name}[/bold] ({role}) in {seconds:.1f}s "
                      f"({emb.shape[0] / max(seconds, 1e-9):.0f} texts/s, {ctx.world_size} "
                      f"process{'es' if ctx.world_size > 1 else ''}) -> cache "
                      f"{store.path_for(cache_key(model, role), corpus)}"
                      + (f" and {out}" if out else ""), highlight=False)
    ctx.close()


def _load_task(task: str, data: Path, split: str, limit: Optional[int], option: Optional[list[str]]):
    from textme_sdk.evaluation.datasets import load_task

    return load_task(task, data, split=split, limit=limit, **parse_kv(option))


@app.command("eval")
def eval_cmd(
    bundle: str = typer.Argument(..., help="Bundle folder or Hub repo id."),
    task: str = typer.Option(..., help="Benchmark (`textme tasks` lists them)."),
    data: Path = typer.Option(..., help="Folder where the benchmark was unpacked (its standard layout)."),
    split: str = typer.Option("test"),
    limit: Optional[int] = typer.Option(None, help="Only the first N items."),
    modality: Optional[str] = typer.Option(None, "--modality", "-m", help="Bundle modality (default: the dataset's)."),
    text_via: str = typer.Option("anchor", help="Texts through the anchor, the encoder + projector, or both."),
    ablation: Optional[str] = typer.Option(None, help="A bundle trained with --no-offsets, for the w/o-offsets row."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="KEY=VALUE for the dataset reader."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Write the markdown block."),
    batch_size: int = typer.Option(32),
    no_cache: bool = typer.Option(False, help="Do not cache item embeddings."),
    shots: Optional[list[int]] = typer.Option(None, "--shots", help="Also fit few-shot heads on K shots per class (repeatable)."),
    shot_seeds: int = typer.Option(5, min=1, help="Shot draws per K for --shots (mean +- std)."),
) -> None:
    """Evaluate a bundle on a benchmark: pretrained vs TextME vs ablations, with PPR."""
    import textme_sdk as tm
    from textme_sdk.evaluation import evaluate

    try:
        dataset = _load_task(task, data, split, limit, option)
        model = tm.TextME.from_pretrained(bundle, modalities=[modality] if modality else None)
        abl = tm.TextME.from_pretrained(ablation) if ablation else None
        report = evaluate(model, dataset, modality, text_via=text_via, ablation=abl,
                          batch_size=batch_size, cache=False if no_cache else None)
        if shots:
            from textme_sdk.evaluation.fewshot import fewshot_protocol

            report.fewshot, note = fewshot_protocol(
                model, task, data, report.modality, shots, shot_seeds, split, limit,
                parse_kv(option), batch_size=batch_size, cache=False if no_cache else None)
            report.notes.append(note)
    except tm.TextMEError as exc:
        _fail(exc)
    console.print(report.to_rich_table())
    if report.fewshot:
        from textme_sdk.evaluation.fewshot import format_fewshot_markdown

        console.print(format_fewshot_markdown(report.fewshot), highlight=False)
    for note in report.notes:
        console.print(f"  - {_escape(note)}", highlight=False)
    if json_out:
        report.to_json(json_out)
    if markdown_out:
        markdown_out.write_text(report.to_markdown(), encoding="utf-8")


@app.command("tasks")
def tasks_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the benchmarks `textme eval` reads and the layout each expects."""
    from textme_sdk.evaluation.datasets import TASKS

    if as_json:
        typer.echo(json.dumps({n: {"kind": t.kind, "modality": t.modality, "splits": list(t.splits),
                                   "options": list(t.options), "layout": t.layout,
                                   "description": t.description} for n, t in TASKS.items()},
                              indent=2))
        return
    table = Table("task", "kind", "modality", "splits", "layout")
    for n, t in TASKS.items():
        table.add_row(n, t.kind, t.modality, ", ".join(t.splits), _escape(t.layout))
    console.print(table)


@app.command("diagnose")
def diagnose_cmd(
    encoder: str = typer.Argument(..., help="Registered encoder name."),
    encoder_arg: Optional[list[str]] = typer.Option(None, "--encoder-arg", "-e", help="KEY=VALUE for the encoder."),
    texts: Optional[Path] = typer.Option(None, help="Descriptions (unpaired, or paired with --paired)."),
    inputs: Optional[Path] = typer.Option(None, help="Modal inputs: a folder or a list file."),
    paired: bool = typer.Option(False, help="texts[i] describes inputs[i] (measures every property)."),
    task: Optional[str] = typer.Option(None, help="Or take pairs from a benchmark (first caption per item)."),
    data: Optional[Path] = typer.Option(None, help="The benchmark's folder (with --task)."),
    split: str = typer.Option("test"),
    limit: int = typer.Option(5000, help="Samples of each kind."),
    text_column: Optional[str] = typer.Option(None),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
    strict: bool = typer.Option(False, help="Exit with status 2 when the verdict has warnings."),
    batch_size: int = typer.Option(64),
) -> None:
    """Measure an encoder's modality-gap geometry and say whether offsets will bridge it."""
    import textme_sdk as tm
    from textme_sdk.diagnostics import diagnose

    try:
        enc = tm.get_encoder(encoder, **parse_kv(encoder_arg))
        if task is not None:
            if data is None:
                raise InvalidInputError("--task needs --data (the benchmark's folder)")
            ds = _load_task(task, data, split, limit, None)
            if hasattr(ds, "captions"):
                first: dict[int, str] = {}
                for cap, item in zip(ds.captions, ds.caption_item):
                    first.setdefault(item, cap)
                idx = sorted(first)
                pair_texts, pair_inputs = [first[i] for i in idx], [ds.items[i] for i in idx]
            else:
                from textme_sdk.evaluation.templates import get_templates

                template = get_templates(ds.domain)[0]
                labels = ds.labels.float().argmax(1) if ds.multilabel else ds.labels
                pair_texts = [template.format(ds.class_names[int(c)]) for c in labels]
                pair_inputs = list(ds.items)
            report = diagnose(enc, pair_texts, pair_inputs, paired=True, batch_size=batch_size)
        elif texts is not None and inputs is not None:
            corpus = read_texts(texts, text_column, limit)
            items = read_inputs(inputs, enc.input_spec.file_extensions, limit)
            report = diagnose(enc, corpus, items, paired=paired, batch_size=batch_size)
        else:
            raise InvalidInputError("pass --texts and --inputs, or --task and --data")
    except tm.TextMEError as exc:
        _fail(exc)
    d = report.to_dict()
    table = Table("property", "value", title=f"gap geometry of {encoder} "
                  f"({'paired' if report.paired else 'unpaired'}: {report.n_text} texts / "
                  f"{report.n_modal} inputs)")
    rows = [("gap norm ||mu_modal - mu_text||", "gap_norm"),
            ("gap consistency (mean cos(g_i, g))", "gap_consistency"),
            ("  spread (std)", "gap_consistency_std"),
            ("bounded deviation (||g_i - g|| / ||g||)", "bounded_deviation"),
            ("gap-content orthogonality: text", "orthogonality_text"),
            ("gap-content orthogonality: modal", "orthogonality_modal"),
            ("intra-modal independence (split-half cos)", "independence_split_half"),
            ("offset standard error / gap", "offset_relative_error"),
            ("intra-text cosine", "intra_text_cosine"),
            ("intra-modal cosine", "intra_modal_cosine")]
    for label, key in rows:
        v = d[key]
        table.add_row(label, "n/a (needs pairs)" if v != v else f"{v:.3f}")
    console.print(table)
    console.print(f"recommendation: [bold]{report.recommendation}[/bold]")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {_escape(w)}", highlight=False)
    if not report.warnings:
        console.print("[green]no warnings: a single offset should bridge this encoder's gap[/green]")
    if json_out:
        json_out.write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
    if strict and report.warnings:
        raise typer.Exit(2)


@app.command("add-modality")
def add_modality_cmd(
    name: str = typer.Argument(..., help="Plugin name, e.g. my_encoder (writes textme-my_encoder/)."),
    modality: Optional[str] = typer.Option(None, help="Modality name (default: NAME)."),
    dim: int = typer.Option(512, help="Embedding dimension of the encoder."),
    input_kind: str = typer.Option("file", help="What the encoder takes: file, array or text."),
    ext: Optional[list[str]] = typer.Option(None, "--ext", "-x", help="Accepted file extension (repeatable), e.g. .wav"),
    directory: Optional[Path] = typer.Option(None, "--dir", "--directory", "-d", help="Where to write (default: here)."),
    force: bool = typer.Option(False, help="Rewrite the scaffold's own files in an existing folder."),
) -> None:
    """Write a working plugin scaffold for a new modality encoder (tests included)."""
    import textme_sdk as tm
    from textme_sdk.scaffold import create_plugin

    try:
        folder = create_plugin(name, directory=directory, modality=modality, dim=dim,
                               input_kind=input_kind, extensions=tuple(ext or ()), force=force)
    except tm.TextMEError as exc:
        _fail(exc)
    console.print(f"wrote [bold]{folder}[/bold]\nnext steps:\n"
                  f"  cd {folder}\n  pip install -e .\n  textme plugins\n  python -m pytest -q\n"
                  "then replace the TODO(author) stand-ins in the encoder with your model",
                  highlight=False)


@app.command("info")
def info_cmd(bundle: str = typer.Argument(..., help="Bundle folder or Hub repo id."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a bundle's anchor, modalities, offsets and training summary."""
    import textme_sdk as tm
    from textme_sdk.bundle import read_config

    try:
        model = tm.TextME.from_pretrained(bundle)
        cfg = read_config(model.bundle_path)
    except tm.TextMEError as exc:
        _fail(exc)
    mods = {n: {**cfg["modalities"][n], "offsets": {k: v for k, v in model.entry(n).info["offsets"].items()},
                "training": model.entry(n).info.get("training", {})} for n in model.modalities}
    if as_json:
        typer.echo(json.dumps({"anchor": cfg["anchor"], "modalities": mods,
                               "versions": cfg.get("versions", {})}, indent=2, default=str))
        return
    console.print(f"anchor: [bold]{cfg['anchor']['plugin']}[/bold] ({cfg['anchor']['embedding_dim']}-d)"
                  f"  format {cfg['format_version']}  similarity {cfg['similarity']}")
    table = Table("modality", "encoder", "dim", "offset samples (text/modal)", "gap", "best val R@1")
    for n, m in mods.items():
        o = m["offsets"]
        table.add_row(n, m["plugin"], str(m["embedding_dim"]), f"{o.get('n_text')}/{o.get('n_modal')}",
                      f"{o.get('gap', float('nan')):.3f}", str(m["training"].get("best_val_r1", "-")))
    console.print(table)


@app.command("push")
def push_cmd(
    bundle: Path = typer.Argument(..., help="Local bundle folder."),
    repo_id: str = typer.Argument(..., help="Hub repository, e.g. org/name."),
    private: bool = typer.Option(False),
    token: Optional[str] = typer.Option(None, envvar="HF_TOKEN"),
    message: str = typer.Option("Upload TextME bundle", "--message"),
) -> None:
    """Upload a bundle to the Hugging Face Hub in one commit."""
    import textme_sdk as tm

    try:
        url = tm.TextME.from_pretrained(bundle).push_to_hub(repo_id, token=token, private=private,
                                                            commit_message=message)
    except tm.TextMEError as exc:
        _fail(exc)
    console.print(f"pushed {bundle} -> {url}")


@app.command("pull")
def pull_cmd(
    repo_id: str = typer.Argument(..., help="Hub repository, e.g. org/name."),
    modality: Optional[list[str]] = typer.Option(None, "--modality", "-m", help="Only these modalities."),
    revision: Optional[str] = typer.Option(None),
    out: Optional[Path] = typer.Option(None, help="Also save the bundle to this folder."),
    token: Optional[str] = typer.Option(None, envvar="HF_TOKEN"),
) -> None:
    """Download a bundle (only the requested modalities) into the Hub cache."""
    import textme_sdk as tm

    try:
        model = tm.TextME.from_pretrained(repo_id, modalities=modality or None, revision=revision,
                                          token=token)
        if out is not None:
            model.save_pretrained(out)
    except tm.TextMEError as exc:
        _fail(exc)
    console.print(f"{repo_id}: {', '.join(model.modalities) or 'no modalities'} -> "
                  f"{out or model.bundle_path}")


from .search import register as _register_search  # noqa: E402 - `textme index` / `textme search`
_register_search(app)

_plugin_commands_added = False


def get_app() -> typer.Typer:
    """The app with the commands of every plugin (``register_commands`` hook) added once."""
    global _plugin_commands_added
    if not _plugin_commands_added:
        _plugin_commands_added = True
        _add_plugin_commands()
    return app


def _add_plugin_commands() -> None:
    from textme_sdk.plugins import call_hook

    call_hook("register_commands", app=app)  # a failing plugin is logged, never fatal


def main() -> None:
    """Entry point of the ``textme`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    get_app()()


from textme_sdk.cli import fewshot as _fewshot  # noqa: E402 - after the helpers it uses

_fewshot.register(app)
