"""OGB molecular-graph featurisation, as MoleculeSTM's graph branch was trained on it.

MoleculeSTM turns an RDKit molecule into a graph with ``mol_to_graph_data_obj_simple``
(``MoleculeSTM/datasets/utils.py``), which calls ``atom_to_feature_vector`` and
``bond_to_feature_vector`` of ``ogb.utils.features``. This module re-implements both with
RDKit alone (``ogb`` is not a dependency), index for index:

* 9 integer features per atom, each an index into its own embedding table:
  atomic number (1-118, misc), chirality tag, total degree (0-10, misc), formal charge
  (-5..5, misc), total H count (0-8, misc), radical electrons (0-4, misc), hybridisation
  (SP, SP2, SP3, SP3D, SP3D2, misc), aromatic, in ring. Table sizes
  ``(119, 5, 12, 12, 10, 6, 6, 2, 2)``.
* 3 integer features per bond: type (single, double, triple, aromatic, misc), stereo
  (none, any, Z, E, cis, trans in OGB's order), conjugated. Table sizes ``(5, 6, 2)``.
* every bond gives two directed edges (i -> j, j -> i) with the same features; no self-loops.

Two version traps are handled explicitly:

* The chirality table has **4** rows in ogb <= 1.3.5 (``CHI_UNSPECIFIED, CHI_TETRAHEDRAL_CW,
  CHI_TETRAHEDRAL_CCW, CHI_OTHER``) and **5** from ogb 1.3.6 on (a ``misc`` row appended).
  MoleculeSTM's README pins ogb 1.2.0, its Dockerfile installs the newest ogb, so a checkpoint
  may have either; the encoder reads the size from the checkpoint and passes it here as
  ``chirality_rows``. The versions also differ on tags outside the list (RDKit >= 2022.09 adds
  ``CHI_TETRAHEDRAL``, ``CHI_ALLENE``, ``CHI_SQUAREPLANAR``, ``CHI_TRIGONALBIPYRAMIDAL``,
  ``CHI_OCTAHEDRAL``, e.g. from ``[Pt@SP1]`` in a SMILES): ogb <= 1.3.5 looks chirality up with
  ``list.index`` and raises ``ValueError`` on them, ogb >= 1.3.6 uses ``safe_index`` and maps
  them to its ``misc`` row. Both are reproduced: with 5 rows such atoms get row 4, with 4 rows
  they raise :class:`UnlistedChiralityError` (the encoder reports it as an invalid molecule,
  which ``on_invalid="skip"`` skips).
* OGB looks bond stereo up with ``list.index`` (no misc row). RDKit >= 2023.09 can report
  atropisomer stereo (``STEREOATROPCW`` / ``STEREOATROPCCW``), on which ogb raises; the RDKit
  MoleculeSTM used (2020.09) reported such bonds as ``STEREONONE``, so they map to 0 here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "ATOM_FEATURE_SIZES",
    "ATOM_FEATURE_SIZES_OGB_1_3_5",
    "BOND_FEATURE_SIZES",
    "GraphBatch",
    "MolGraph",
    "UnlistedChiralityError",
    "atom_features",
    "bond_features",
    "collate_graphs",
    "mol_to_graph",
]

# Choices of each categorical feature, in OGB's order. A feature whose table has a "misc"
# row maps anything not listed to the row after the last listed choice.
_ATOMIC_NUMBERS = tuple(range(1, 119))
_CHIRALITY = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER")
_DEGREES = tuple(range(11))
_FORMAL_CHARGES = tuple(range(-5, 6))
_NUM_HS = tuple(range(9))
_RADICAL_ELECTRONS = tuple(range(5))
_HYBRIDISATIONS = ("SP", "SP2", "SP3", "SP3D", "SP3D2")
_BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
_BOND_STEREO = ("STEREONONE", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS", "STEREOANY")

#: Embedding-table sizes of the 9 atom features (ogb >= 1.3.6: chirality has a misc row).
ATOM_FEATURE_SIZES: tuple[int, ...] = (
    len(_ATOMIC_NUMBERS) + 1, len(_CHIRALITY) + 1, len(_DEGREES) + 1, len(_FORMAL_CHARGES) + 1,
    len(_NUM_HS) + 1, len(_RADICAL_ELECTRONS) + 1, len(_HYBRIDISATIONS) + 1, 2, 2,
)
#: The same for ogb <= 1.3.5, whose chirality table has no misc row.
ATOM_FEATURE_SIZES_OGB_1_3_5: tuple[int, ...] = (
    ATOM_FEATURE_SIZES[0], len(_CHIRALITY), *ATOM_FEATURE_SIZES[2:]
)
#: Embedding-table sizes of the 3 bond features (stereo has no misc row).
BOND_FEATURE_SIZES: tuple[int, ...] = (len(_BOND_TYPES) + 1, len(_BOND_STEREO), 2)

_CHIRALITY_ROWS = (len(_CHIRALITY), len(_CHIRALITY) + 1)


class UnlistedChiralityError(ValueError):
    """An atom's chirality tag has no row in a 4-row (ogb <= 1.3.5) chirality table.

    ogb <= 1.3.5 raises ``ValueError`` on such atoms as well; tables with 5 rows (ogb >= 1.3.6)
    take them in their ``misc`` row.
    """


def _slot(choices: Sequence[Any], value: Any) -> int:
    """Position of ``value`` in ``choices``; the misc row (``len(choices)``) when absent."""
    try:
        return choices.index(value)
    except ValueError:
        return len(choices)


def atom_features(atom: Any, chirality_rows: int = 5) -> list[int]:
    """The 9 OGB feature indices of an RDKit atom.

    Args:
        atom: an ``rdkit.Chem.Atom`` of a sanitised molecule.
        chirality_rows: rows of the checkpoint's chirality table, 5 (ogb >= 1.3.6: chirality
            tags OGB does not list go to the ``misc`` row 4) or 4 (ogb <= 1.3.5: such tags
            raise, as in ogb).

    Raises:
        ValueError: ``chirality_rows`` is neither 4 nor 5.
        UnlistedChiralityError: ``chirality_rows=4`` and the atom's chirality tag is not one of
            the four ogb <= 1.3.5 lists.
    """
    if chirality_rows not in _CHIRALITY_ROWS:
        raise ValueError(f"chirality_rows must be 4 or 5 (the ogb versions), got {chirality_rows}")
    tag = str(atom.GetChiralTag())
    chirality = _slot(_CHIRALITY, tag)
    if chirality == len(_CHIRALITY) and chirality_rows == len(_CHIRALITY):
        raise UnlistedChiralityError(
            f"atom {atom.GetIdx()} has chirality {tag}, for which this checkpoint's 4-row "
            "chirality table (ogb <= 1.3.5, which raises on it too) has no row; set that "
            "atom's chiral tag to CHI_UNSPECIFIED, or use a checkpoint with 5 rows"
        )
    return [
        _slot(_ATOMIC_NUMBERS, atom.GetAtomicNum()),
        chirality,
        _slot(_DEGREES, atom.GetTotalDegree()),
        _slot(_FORMAL_CHARGES, atom.GetFormalCharge()),
        _slot(_NUM_HS, atom.GetTotalNumHs()),
        _slot(_RADICAL_ELECTRONS, atom.GetNumRadicalElectrons()),
        _slot(_HYBRIDISATIONS, str(atom.GetHybridization())),
        int(bool(atom.GetIsAromatic())),
        int(bool(atom.IsInRing())),
    ]


def bond_features(bond: Any) -> list[int]:
    """The 3 OGB feature indices of an RDKit bond (type, stereo, conjugated).

    Stereo values OGB does not list (atropisomers, RDKit >= 2023.09) count as ``STEREONONE``,
    what the RDKit MoleculeSTM was trained with reported for them.
    """
    stereo = _slot(_BOND_STEREO, str(bond.GetStereo()))
    return [
        _slot(_BOND_TYPES, str(bond.GetBondType())),
        0 if stereo == len(_BOND_STEREO) else stereo,
        int(bool(bond.GetIsConjugated())),
    ]


@dataclass
class MolGraph:
    """One molecule as an OGB graph.

    Attributes:
        x: atom features ``[num_atoms, 9]`` (int64).
        edge_index: directed edges ``[2, 2 * num_bonds]``: row 0 sources, row 1 targets; each
            bond appears as (i, j) then (j, i).
        edge_attr: bond features of each directed edge ``[2 * num_bonds, 3]`` (int64).
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])


def mol_to_graph(mol: Any, chirality_rows: int = 5) -> MolGraph:
    """Featurise an RDKit molecule like MoleculeSTM's ``mol_to_graph_data_obj_simple``.

    Atoms keep RDKit's order; hydrogens are nodes only if they are explicit atoms of ``mol``
    (RDKit's SMILES and SDF readers remove them by default, as upstream read its data).

    Raises:
        ValueError: the molecule has no atoms (it would have no graph embedding).
        UnlistedChiralityError: with ``chirality_rows=4``, an atom has a chirality tag
            ogb <= 1.3.5 does not list (see :func:`atom_features`).
    """
    atoms = [atom_features(atom, chirality_rows) for atom in mol.GetAtoms()]
    if not atoms:
        raise ValueError("the molecule has no atoms")
    edges: list[tuple[int, int]] = []
    attrs: list[list[int]] = []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        feats = bond_features(bond)
        edges += [(i, j), (j, i)]
        attrs += [feats, feats]
    x = torch.tensor(atoms, dtype=torch.long)
    if not edges:
        return MolGraph(x, torch.empty(2, 0, dtype=torch.long),
                        torch.empty(0, len(BOND_FEATURE_SIZES), dtype=torch.long))
    return MolGraph(x, torch.tensor(edges, dtype=torch.long).T.contiguous(),
                    torch.tensor(attrs, dtype=torch.long))


@dataclass
class GraphBatch:
    """Several molecules as one block-diagonal graph (PyG's batching, without PyG).

    Attributes:
        x: atom features of all molecules ``[N, 9]``.
        edge_index: edges ``[2, E]`` with node indices shifted into the concatenated graph.
        edge_attr: ``[E, 3]``.
        batch: the molecule each node belongs to ``[N]``.
        num_graphs: number of molecules.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    batch: torch.Tensor
    num_graphs: int

    def to(self, device: torch.device | str) -> GraphBatch:
        """The same batch on ``device``."""
        return GraphBatch(self.x.to(device), self.edge_index.to(device),
                          self.edge_attr.to(device), self.batch.to(device), self.num_graphs)


def collate_graphs(graphs: Sequence[MolGraph]) -> GraphBatch:
    """Concatenate graphs into one :class:`GraphBatch` (node indices offset per molecule).

    Raises:
        ValueError: no graphs.
    """
    if not graphs:
        raise ValueError("collate_graphs needs at least one graph")
    sizes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
    offsets = torch.cumsum(sizes, 0) - sizes
    edge_index = torch.cat([g.edge_index + off for g, off in zip(graphs, offsets.tolist())], dim=1)
    return GraphBatch(
        x=torch.cat([g.x for g in graphs]),
        edge_index=edge_index,
        edge_attr=torch.cat([g.edge_attr for g in graphs]),
        batch=torch.repeat_interleave(torch.arange(len(graphs)), sizes),
        num_graphs=len(graphs),
    )
