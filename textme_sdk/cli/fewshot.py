"""``textme fewshot`` and ``textme predict``: few-shot classifier heads from the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from textme_sdk.errors import InvalidInputError, MissingInputFileError

__all__ = ["register", "read_shots", "read_class_texts"]


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not UTF-8 text ({exc.reason}); convert it") from None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    return [row for row in csv.reader(text.splitlines(), delimiter=delimiter)
            if row and any(c.strip() for c in row)]


def read_shots(path: Path, extensions: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Labelled shots: a CSV of ``path,label`` rows (an optional header; relative paths are
    relative to the CSV's folder), or a folder with one sub-folder of files per class. For an
    encoder without file ``extensions`` (it takes values such as SMILES strings), the CSV's
    first column is passed as it is.

    Raises:
        InvalidInputError: no shots, a malformed row, or a missing file.
    """
    if not path.exists():
        raise InvalidInputError(f"{path} does not exist; pass a CSV of path,label or a folder "
                                "with one sub-folder per class")
    items: list[str] = []
    labels: list[str] = []
    if path.is_dir():
        exts = {e.lower() for e in extensions}
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            for f in sorted(sub.rglob("*")):
                if f.is_file() and (not exts or f.suffix.lower() in exts):
                    items.append(str(f))
                    labels.append(sub.name)
        if not items:
            raise InvalidInputError(f"{path} has no class sub-folders with "
                                    f"{'/'.join(extensions) or 'files'}; put each class's files "
                                    "in a folder named after the class")
        return items, labels
    rows = [[c.strip() for c in row] for row in _csv_rows(path)]
    if rows and [c.lower() for c in rows[0][:2]] in (["path", "label"], ["file", "label"],
                                                     ["item", "label"]):
        rows = rows[1:]
    for i, row in enumerate(rows, 1):
        if len(row) < 2 or not row[0] or not row[1]:
            raise InvalidInputError(f"{path}, row {i}: expected path,label, got {row!r}")
        if not extensions:  # the encoder takes values (e.g. SMILES), not files
            items.append(row[0])
            labels.append(row[1])
            continue
        item = Path(row[0]).expanduser()
        item = item if item.is_absolute() else path.parent / item
        if not item.is_file():
            raise MissingInputFileError(f"{path}, row {i}: {item} is not a file; fix the path "
                                        "(relative paths start at the CSV's folder)")
        items.append(str(item))
        labels.append(row[1])
    if not items:
        raise InvalidInputError(f"{path} lists no shots; write one path,label row per sample")
    return items, labels


def read_class_texts(path: Path) -> dict[str, list[str]]:
    """Class descriptions: a JSON object ``{label: [texts]}`` or a CSV of ``label,text`` rows."""
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file; pass a JSON {{label: [texts]}} or a CSV "
                                "of label,text rows")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path} is not valid JSON ({exc}); fix the file") from None
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(t, str) for t in v) for v in data.values()):
            raise InvalidInputError(f"{path} must hold an object {{label: [texts]}}")
        return {str(k): list(v) for k, v in data.items()}
    out: dict[str, list[str]] = {}
    rows = [[row[0].strip(), ",".join(row[1:]).strip()] for row in _csv_rows(path)]
    if rows and [c.lower() for c in rows[0]] == ["label", "text"]:
        rows = rows[1:]
    for i, (label, text) in enumerate(rows, 1):
        if not label or not text:
            raise InvalidInputError(f"{path}, row {i}: expected label,text, got {label!r}, {text!r}")
        out.setdefault(label, []).append(text)
    if not out:
        raise InvalidInputError(f"{path} holds no class texts")
    return out


def _bundle_of(head_dir: Path, head: Any, bundle: Optional[str]) -> str:
    """The bundle to embed with: ``--bundle``, the bundle holding the head, or the one it records."""
    if bundle:
        return bundle
    enclosing = head_dir.resolve().parent.parent
    if head_dir.resolve().parent.name == "heads" and (enclosing / "config.json").is_file():
        return str(enclosing)
    source = head.bundle.get("source")
    if source:
        return str(source)
    raise InvalidInputError(f"{head_dir} does not record the bundle it was fitted on; pass "
                            "--bundle BUNDLE")


def register(app: typer.Typer) -> None:
    """Add ``fewshot`` and ``predict`` to the ``textme`` app."""
    from textme_sdk.cli.app import _escape, _fail, console, read_inputs

    @app.command("fewshot")
    def fewshot_cmd(
        bundle: str = typer.Argument(..., help="Bundle folder or Hub repo id."),
        modality: str = typer.Option(..., "--modality", "-m", help="Bundle modality of the shots."),
        shots: Path = typer.Option(..., help="CSV of path,label rows, or a folder with one sub-folder per class."),
        out: Path = typer.Option(..., help="Folder to write the head to (missing, empty, or a head)."),
        class_texts: Optional[Path] = typer.Option(None, help="JSON {label: [texts]} or CSV label,text (default: the modality's prompt templates)."),
        space: str = typer.Option("anchor", help="'anchor' (classifies every modality) or 'encoder' (offset-centred encoder space)."),
        text_weight: float = typer.Option(1.0, min=0.0, help="alpha of CE(modal) + alpha * CE(text); 0 = shots only."),
        steps: int = typer.Option(200, min=0, help="Training steps."),
        lr: float = typer.Option(1e-3, help="AdamW learning rate."),
        val_fraction: float = typer.Option(0.0, help="Share of each class's shots held out for early stopping."),
        seed: int = typer.Option(0, min=0),
        batch_size: int = typer.Option(32, min=1),
    ) -> None:
        """Fit a few-shot classifier head (shots + class texts, UML) and save it."""
        import textme_sdk as tm
        from textme_sdk.heads import _check_head_target

        try:
            if space not in ("anchor", "encoder"):
                raise InvalidInputError(f"--space must be 'anchor' or 'encoder', got {space!r}")
            config = tm.HeadConfig(steps=steps, lr=lr, val_fraction=val_fraction, seed=seed)
            _check_head_target(out)
            texts = read_class_texts(class_texts) if class_texts is not None else None
            model = tm.TextME.from_pretrained(bundle)
            enc = model.entry(modality).encoder
            items, labels = read_shots(shots, enc.input_spec.file_extensions)
            head = tm.fit_head(model, items, labels, modality, class_texts=texts,
                               text_weight=text_weight, space=space, config=config,
                               batch_size=batch_size)
            head.save_pretrained(out)
        except tm.TextMEError as exc:
            _fail(exc)
        console.print(f"head of {head.num_classes} classes ({len(items)} {modality} shots, "
                      f"{head.info['class_texts'] + head.info['extra_texts']} texts, {space} space, "
                      f"{head.info['seconds']:.2f}s) -> {out}", highlight=False)

    @app.command("predict")
    def predict_cmd(
        head: Path = typer.Argument(..., help="A head folder (from `textme fewshot`, or BUNDLE/heads/NAME)."),
        items: list[Path] = typer.Argument(..., help="Input files, folders of them, or list files."),
        modality: str = typer.Option(..., "--modality", "-m", help="Bundle modality of the items."),
        bundle: Optional[str] = typer.Option(None, help="Bundle to embed with (default: the one holding or recorded by the head)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        batch_size: int = typer.Option(32, min=1),
    ) -> None:
        """Classify inputs with a few-shot head: the label and its probability per input."""
        import textme_sdk as tm

        try:
            clf = tm.ClassifierHead.from_pretrained(head)
            model = tm.TextME.from_pretrained(_bundle_of(head, clf, bundle))
            exts = model.entry(modality).encoder.input_spec.file_extensions
            inputs: list[str] = []
            for p in items:
                if p.is_file() and p.suffix.lower() in {e.lower() for e in exts}:
                    inputs.append(str(p))
                else:
                    inputs += read_inputs(p, exts)
            emb = clf.embed(model, inputs, modality, batch_size)
            proba = clf.predict_proba(emb, modality)
        except tm.TextMEError as exc:
            _fail(exc)
        best = proba.max(-1)
        rows = [{"input": x, "label": clf.classes[int(i)], "probability": round(float(p), 6)}
                for x, p, i in zip(inputs, best.values, best.indices)]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        table = Table("input", "label", "probability")
        for r in rows:
            table.add_row(_escape(r["input"]), _escape(r["label"]), f"{r['probability']:.3f}")
        console.print(table)
