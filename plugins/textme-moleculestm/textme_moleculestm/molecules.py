"""Molecule inputs: SMILES strings, RDKit ``Mol`` objects, ``.mol`` and ``.sdf`` files.

One input is one molecule:

* a SMILES string is parsed with ``Chem.MolFromSmiles`` (sanitised, hydrogens implicit), as
  MoleculeSTM's dataset classes do;
* an RDKit ``Mol`` is used as given (explicit hydrogen atoms would become graph nodes:
  call ``Chem.RemoveHs`` first to match upstream's heavy-atom graphs);
* a ``.mol`` file is read with ``Chem.MolFromMolFile`` and a ``.sdf`` file with
  ``Chem.SDMolSupplier`` (both sanitise and remove hydrogens by default, as upstream's
  PubChemSTM reader did). An SDF must hold exactly one molecule; read a multi-molecule SDF
  with :func:`read_sdf` and pass the list it returns (one input per molecule).

A string is a file path when it ends in ``.sdf`` or ``.mol`` (no valid SMILES does, since
neither ``d`` nor ``m`` is a SMILES atom symbol) or when a ``pathlib.Path`` is passed.

Molecules RDKit cannot read raise :class:`InvalidMoleculeError` with the input's index; with
``on_invalid="skip"`` they are left out and their indices reported (:func:`parse_molecules`).
Wrong Python types, missing files and multi-molecule SDF files always raise.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from textme_sdk.encoders import check_input_file
from textme_sdk.errors import EmptyInputError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "MOLECULE_EXTENSIONS",
    "InvalidMoleculeError",
    "OnInvalid",
    "ParsedMolecules",
    "molecule_list",
    "parse_molecules",
    "read_sdf",
    "to_mol",
]

OnInvalid = Literal["raise", "skip"]
#: File suffixes read as molecule files (case-insensitive).
MOLECULE_EXTENSIONS: tuple[str, ...] = (".sdf", ".mol")
_ON_INVALID = ("raise", "skip")


class InvalidMoleculeError(InvalidInputError):
    """An input RDKit cannot turn into a molecule graph (bad SMILES, unreadable file, no atoms).

    Attributes:
        index: position of the input in the list given to the encoder (``None`` if unknown).
        value: the offending input (a SMILES string, a path, ...).
        reason: what RDKit reported.
    """

    def __init__(self, index: int | None, value: Any, reason: str):
        self.index, self.value, self.reason = index, value, reason
        where = f"input {index}" if index is not None else "an input"
        super().__init__(
            f"{where} is not a valid molecule: {_short(value)} ({reason}). Fix or drop it, or "
            "create the encoder with on_invalid='skip' to leave invalid molecules out "
            "(textme_moleculestm.embed_molecules returns the indices that were kept)"
        )


def _short(value: Any, limit: int = 120) -> str:
    text = repr(os.fspath(value) if isinstance(value, Path) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_on_invalid(on_invalid: str) -> OnInvalid:
    """Validate an ``on_invalid`` option."""
    if on_invalid not in _ON_INVALID:
        raise InvalidInputError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
    return on_invalid  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Keep RDKit's parse errors off stderr (they are re-raised as typed errors instead)."""
    from rdkit import rdBase

    blocker = rdBase.BlockLogs()
    try:
        yield
    finally:
        del blocker


def _smiles_problem(smiles: str) -> str:
    """Why ``Chem.MolFromSmiles`` rejected a string, in RDKit's words where possible."""
    from rdkit import Chem

    if not smiles.strip():
        return "empty string"
    raw = Chem.MolFromSmiles(smiles, sanitize=False)
    if raw is None:
        return "SMILES syntax error"
    problems = Chem.DetectChemistryProblems(raw)
    if problems:
        return "; ".join(p.Message() for p in problems[:3])
    return "RDKit could not sanitise it"


def _is_mol(item: Any) -> bool:
    from rdkit import Chem

    return isinstance(item, Chem.Mol)


def _is_path(item: Any) -> bool:
    if isinstance(item, os.PathLike):
        return True
    return isinstance(item, str) and item.lower().endswith(MOLECULE_EXTENSIONS)


def _read_file(path: str, index: int | None) -> Any:
    from rdkit import Chem

    check_input_file(path, "molecule", "*.sdf")
    suffix = Path(path).suffix.lower()
    if suffix == ".mol":
        mol = Chem.MolFromMolFile(path)
        if mol is None:
            raise InvalidMoleculeError(index, path, "RDKit could not read this MOL file: "
                                       "corrupt, or a molecule it cannot sanitise")
        return mol
    if suffix != ".sdf":
        raise InvalidInputError(
            f"input {index}: {path!r} is not a .sdf or .mol file; pass SMILES strings, RDKit "
            "Mol objects or .sdf/.mol files"
        )
    try:
        supplier = Chem.SDMolSupplier(path)
        count = len(supplier)
    except OSError:  # RDKit refuses empty files as "invalid input file"
        count = 0
    if count > 1:
        raise InvalidInputError(
            f"input {index}: {path!r} holds {count} molecules, but one input is one molecule; "
            "pass textme_moleculestm.read_sdf(path) instead (a list with one entry per molecule)"
        )
    mol = supplier[0] if count == 1 else None
    if mol is None:
        reason = "no molecule in the file" if count == 0 else (
            "RDKit could not read its record: corrupt, or a molecule it cannot sanitise")
        raise InvalidMoleculeError(index, path, reason)
    return mol


def to_mol(item: Any, index: int | None = None) -> Any:
    """One input as a sanitised RDKit ``Mol`` with at least one atom.

    Args:
        item: a SMILES string, an RDKit ``Mol``, or a ``.mol`` / single-molecule ``.sdf`` path.
        index: the input's position, for error messages.

    Raises:
        InvalidMoleculeError: unparseable SMILES or file, ``None`` (what RDKit readers return
            for a record they cannot parse), or a molecule without atoms.
        MissingInputFileError: a path that does not exist.
        InvalidInputError: any other type, a folder, or an SDF with several molecules.
    """
    from rdkit import Chem

    if item is None:
        raise InvalidMoleculeError(index, None, "None, as RDKit readers return for a record "
                                   "they could not parse")
    with quiet_rdkit():
        if _is_mol(item):
            mol = item
        elif _is_path(item):
            mol = _read_file(os.fspath(item), index)
        elif isinstance(item, str):
            mol = Chem.MolFromSmiles(item)
            if mol is None:
                raise InvalidMoleculeError(index, item, _smiles_problem(item))
        else:
            raise InvalidInputError(
                f"input {index} is a {type(item).__name__}; moleculestm takes SMILES strings, "
                "RDKit Mol objects or paths to .sdf/.mol files"
            )
    if mol.GetNumAtoms() == 0:
        raise InvalidMoleculeError(index, item, "the molecule has no atoms")
    return mol


def molecule_list(inputs: Any, expecting: str = "expected") -> list[Any]:
    """``inputs`` as a list, refusing one molecule passed on its own (a string or a path).

    Args:
        inputs: a sequence of SMILES strings, ``Mol`` objects or paths.
        expecting: who expects the list, for the message (``"x.encode_modal expects"``).

    Raises:
        InvalidInputError: a single string, bytes or path, or something that is not iterable.
    """
    if isinstance(inputs, (str, bytes, os.PathLike)):
        raise InvalidInputError(
            f"{expecting} a list of molecules, got a single {type(inputs).__name__}; wrap it in "
            f"a list: [{_short(inputs, 60)}]"
        )
    try:
        return list(inputs)
    except TypeError as exc:
        raise InvalidInputError(
            f"{expecting} a list of molecules, got {type(inputs).__name__}") from exc


@dataclass
class ParsedMolecules:
    """The outcome of :func:`parse_molecules`.

    Attributes:
        mols: the valid molecules, in input order.
        kept: the input index of each entry of ``mols``.
        errors: one :class:`InvalidMoleculeError` per skipped input (``.index`` says which).
    """

    mols: list[Any] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    errors: list[InvalidMoleculeError] = field(default_factory=list)

    @property
    def skipped(self) -> list[int]:
        """Input indices that were left out."""
        return [e.index for e in self.errors if e.index is not None]


def parse_molecules(inputs: Sequence[Any], on_invalid: OnInvalid = "raise") -> ParsedMolecules:
    """Turn every input into an RDKit ``Mol``, raising on or skipping invalid molecules.

    Args:
        inputs: a list of SMILES strings, ``Mol`` objects or ``.sdf`` / ``.mol`` paths.
        on_invalid: ``"raise"`` (the first invalid molecule raises) or ``"skip"`` (invalid
            molecules are left out and listed in ``errors``; a warning names their indices).

    Raises:
        InvalidInputError: ``inputs`` is a single string or not a list.
        InvalidMoleculeError: an invalid molecule with ``on_invalid="raise"``.
    """
    check_on_invalid(on_invalid)
    items = molecule_list(inputs)
    out = ParsedMolecules()
    for index, item in enumerate(items):
        try:
            mol = to_mol(item, index)
        except InvalidMoleculeError as err:
            if on_invalid == "raise":
                raise
            out.errors.append(err)
            continue
        out.mols.append(mol)
        out.kept.append(index)
    if out.errors:
        shown = ", ".join(f"{e.index} ({_short(e.value, 40)}: {e.reason})" for e in out.errors[:5])
        more = f" and {len(out.errors) - 5} more" if len(out.errors) > 5 else ""
        logger.warning("moleculestm: skipped %d invalid molecule(s) of %d: %s%s",
                       len(out.errors), len(items), shown, more)
    return out


def read_sdf(path: str | os.PathLike, on_invalid: OnInvalid = "raise") -> list[Any]:
    """All molecules of an SDF file, one ``Mol`` per record (read like upstream: sanitised,
    hydrogens removed).

    Args:
        path: the ``.sdf`` file.
        on_invalid: ``"raise"`` on the first unreadable record, or ``"skip"`` it (a warning
            names the record numbers).

    Raises:
        MissingInputFileError: no such file.
        InvalidMoleculeError: an unreadable record (``index`` = record number) with
            ``on_invalid="raise"``.
        EmptyInputError: the file holds no molecule.
    """
    from rdkit import Chem

    check_on_invalid(on_invalid)
    path = os.fspath(path)
    check_input_file(path, "SDF", "*.sdf")
    mols, bad = [], []
    try:
        supplier = Chem.SDMolSupplier(path)
    except OSError as exc:  # RDKit refuses empty files as "invalid input file"
        raise EmptyInputError(f"{path!r} holds no readable molecule ({exc})") from exc
    with quiet_rdkit():
        for record, mol in enumerate(supplier):
            if mol is None or mol.GetNumAtoms() == 0:
                if on_invalid == "raise":
                    raise InvalidMoleculeError(record, f"{path} record {record}",
                                               "RDKit could not read this SDF record")
                bad.append(record)
                continue
            mols.append(mol)
    if bad:
        logger.warning("moleculestm: skipped %d unreadable record(s) of %s: %s", len(bad), path,
                       bad[:10])
    if not mols:
        raise EmptyInputError(f"{path!r} holds no readable molecule")
    return mols
