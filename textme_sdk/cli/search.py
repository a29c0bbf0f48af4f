"""``textme index`` and ``textme search``: build and query a cross-modal search index."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from textme_sdk.errors import InvalidInputError, MissingInputFileError

from .app import _escape, console, parse_kv, read_inputs, read_texts

__all__ = ["register", "expand_items"]

_GLOB_CHARS = set("*?[")


def expand_items(args: list[str], extensions: tuple[str, ...], text: bool = False) -> list[str]:
    """Inputs from folders, list files, globs and single files (like ``textme train``).

    A folder gives its files with the encoder's extensions (recursively, sorted); a glob its
    matches (sorted); a file with one of those extensions is itself an input; any other file is
    a list file (one input per line; for ``-m text``, a text file as ``textme train`` reads).
    """
    items: list[str] = []
    exts = {e.lower() for e in extensions}
    for arg in args:
        path = Path(arg)
        if _GLOB_CHARS & set(arg) and not path.exists():
            found = sorted(p for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            if not found:
                raise InvalidInputError(f"the pattern {arg!r} matches no files")
            items += found
        elif path.is_dir():
            items += read_inputs(path, extensions)
        elif path.is_file():
            if text:
                items += read_texts(path)
            elif exts and path.suffix.lower() in exts:
                items.append(str(path))
            else:
                items += read_inputs(path, extensions)
        else:
            raise MissingInputFileError(f"{arg} does not exist; pass folders, list files, globs "
                                        "or files")
    if not items:
        raise InvalidInputError("no inputs to index")
    return items


def index_cmd(
    bundle: str = typer.Argument(..., help="Bundle folder or Hub repo id that embeds the items."),
    items: list[str] = typer.Argument(..., help="Folders, list files (one input per line), globs or files."),
    modality: str = typer.Option(..., "--modality", "-m", help="The items' modality (a bundle modality, or text)."),
    out: Path = typer.Option(..., help="Index folder to write (an index there is replaced, or extended with --append)."),
    ids: Optional[Path] = typer.Option(None, help="File with one id per item (default: the file paths)."),
    backend: str = typer.Option("auto", help="auto, exact, faiss or milvus."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="KEY=VALUE for the backend (index_key, nprobe, uri, token, ...)."),
    append: bool = typer.Option(False, help="Add to the index at --out instead of replacing it."),
    batch_size: int = typer.Option(32, min=1),
) -> None:
    """Embed items with a bundle and write (or extend) a search index."""
    import textme_sdk as tm
    from textme_sdk.search.index import _check_index_target

    existing = _check_index_target(out)  # refuse a non-index folder before any work
    if append and not existing:
        raise InvalidInputError(f"--append needs an index at {out}; build one first")
    model = tm.TextME.from_pretrained(bundle, modalities=[] if modality == "text" else [modality])
    exts = () if modality == "text" else model.entry(modality).encoder.input_spec.file_extensions
    inputs = expand_items(items, exts, text=modality == "text")
    id_list = None
    if ids is not None:
        id_list = [line.strip() for line in ids.read_text(encoding="utf-8").splitlines() if line.strip()]
    if append:
        index = tm.Index.load(out, model=model)
        index.add(inputs, modality, model=model, ids=id_list, batch_size=batch_size)
    else:
        index = tm.Index.build(model, inputs, modality, ids=id_list, backend=backend,
                               batch_size=batch_size, **parse_kv(option))
    index.save(out)
    counts = ", ".join(f"{m}={n}" for m, n in index.modalities.items())
    console.print(f"indexed {len(inputs)} {modality} items with [bold]{index.backend}[/bold] -> "
                  f"{out} ({len(index)} items: {counts})", highlight=False,
                  soft_wrap=True)
    index.close()


def search_cmd(
    index: Path = typer.Argument(..., help="Index folder (from `textme index`)."),
    query: Optional[str] = typer.Argument(None, help="A text query."),
    queries: Optional[list[str]] = typer.Option(None, "--query", "-q", help="A text query (repeatable: composed)."),
    query_file: Optional[list[Path]] = typer.Option(None, "--query-file", "-f", help="An input file of --modality (repeatable: composed)."),
    modality: Optional[str] = typer.Option(None, "--modality", "-m", help="Modality of --query-file inputs."),
    weight: Optional[list[float]] = typer.Option(None, "--weight", "-w", help="Weights of the queries, in order: texts, then files (default 1 each)."),
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="Hits to show."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only hits of this modality (repeatable)."),
    bundle: Optional[str] = typer.Option(None, help="The bundle to embed queries with (default: the one recorded in the index)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Search an index with a text, an input of any modality, or a weighted composition."""
    import textme_sdk as tm

    index_dir = index
    texts = ([query] if query else []) + list(queries or [])
    files = list(query_file or [])
    if not texts and not files:
        raise InvalidInputError("pass a QUERY text, --query TEXT or --query-file FILE")
    if files and (modality is None or modality == "text"):
        raise InvalidInputError("--query-file needs --modality/-m (the file's modality, e.g. audio)")
    for f in files:
        if not f.is_file():
            raise MissingInputFileError(f"--query-file {f} does not exist or is not a file")
    parts: list[tuple[Any, str, float]] = [(t, "text", 1.0) for t in texts]
    parts += [(str(f), modality, 1.0) for f in files]
    if weight:
        if len(weight) != len(parts):
            raise InvalidInputError(f"{len(weight)} --weight values for {len(parts)} queries; "
                                    "pass one per query (texts first, then files)")
        parts = [(v, m, w) for (v, m, _), w in zip(parts, weight)]
    model = tm.TextME.from_pretrained(bundle) if bundle else None
    idx = tm.Index.load(index_dir, model=model)
    q = tm.Query(parts) if len(parts) > 1 or weight else None
    if q is not None:
        result = idx.search(q, k=k, filter_modality=only or None)
    else:
        value, mod, _ = parts[0]
        result = idx.search([value], k=k, modality=mod, filter_modality=only or None)
    idx.close()
    label = " + ".join(f"{w:g}*{m}:{v}" if len(parts) > 1 else f"{m}:{v}" for v, m, w in parts)
    if as_json:
        typer.echo(json.dumps({"query": [{"input": v, "modality": m, "weight": w} for v, m, w in parts],
                               **{"hits": result.to_dict()["hits"][0]}}, indent=2))
        return
    table = Table("rank", "score", "modality", "id", title=f"{_escape(label)} in {index_dir}")
    for r, (i, s, m) in enumerate(zip(result.ids[0], result.scores[0], result.modalities[0]), 1):
        table.add_row(str(r), f"{s:.4f}", m, _escape(i))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``index`` and ``search`` to the ``textme`` app."""
    app.command("index")(index_cmd)
    app.command("search")(search_cmd)
