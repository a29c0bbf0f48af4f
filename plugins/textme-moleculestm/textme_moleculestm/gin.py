"""MoleculeSTM's graph branch in plain torch: the GIN of GraphMVP with OGB embeddings.

Ported from ``MoleculeSTM/models/molecule_gnn_model.py`` (``GNN``, ``GINConv``,
``GNN_graphpred``) and ``ogb.graphproppred.mol_encoder`` (``AtomEncoder``, ``BondEncoder``)
without torch_geometric, torch_scatter or ogb. Module and parameter names follow upstream so
that ``molecule_model.pth`` (a ``GNN_graphpred.state_dict()``) loads strictly:

* ``molecule_node_model.atom_encoder.atom_embedding_list.{0..8}.weight`` - one embedding per
  atom feature, summed;
* ``molecule_node_model.gnns.{i}``: ``mlp.0`` Linear(d, 2d), ``mlp.1`` BatchNorm1d(2d),
  ReLU, ``mlp.3`` Linear(2d, d); ``eps`` (learnable, shape [1]);
  ``bond_encoder.bond_embedding_list.{0..2}.weight``;
* ``molecule_node_model.batch_norms.{i}`` - BatchNorm1d(d) after each layer;
* ``graph_pred_linear`` - Linear(d, num_tasks), the pre-training head; unused by retrieval.

One GIN layer: ``h' = MLP((1 + eps) * h + sum_{j -> i} ReLU(h_j + bond_emb(e_ji)))``; then
BatchNorm, and ReLU for every layer but the last (dropout is off at inference). JK = "last",
graph embedding = mean over the molecule's atoms. Messages are gathered and summed with
``index_add_`` over the block-diagonal batch graph, as PyG's "add" aggregation does.

Inference only: the encoder runs these modules in eval mode (BatchNorm with running
statistics, no dropout), as upstream's retrieval and TextME do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .features import ATOM_FEATURE_SIZES, BOND_FEATURE_SIZES, GraphBatch

__all__ = [
    "GIN",
    "AtomEncoder",
    "BondEncoder",
    "GINConfig",
    "GINConv",
    "GraphEncoder",
    "MoleculeTower",
    "mean_pool",
]

_NODE = "molecule_node_model."


@dataclass(frozen=True)
class GINConfig:
    """Sizes of MoleculeSTM's graph branch (upstream defaults: 5 layers, 300-d, 256-d latent).

    Attributes:
        num_layer: GIN layers (``--num_layer``, default 5).
        emb_dim: node width (``--gnn_emb_dim``, default 300).
        latent_dim: output of ``mol2latent`` (``--SSL_emb_dim``, default 256).
        atom_feature_sizes: rows of the 9 atom tables; the chirality entry is 5 (ogb >= 1.3.6)
            or 4 (ogb <= 1.3.5).
        bond_feature_sizes: rows of the 3 bond tables.
        num_tasks: outputs of the unused ``graph_pred_linear`` head (upstream: 1).
    """

    num_layer: int = 5
    emb_dim: int = 300
    latent_dim: int = 256
    atom_feature_sizes: tuple[int, ...] = field(default=ATOM_FEATURE_SIZES)
    bond_feature_sizes: tuple[int, ...] = field(default=BOND_FEATURE_SIZES)
    num_tasks: int = 1

    def __post_init__(self) -> None:
        if self.num_layer < 2:
            raise ValueError(f"MoleculeSTM's GNN needs at least 2 layers, got {self.num_layer}")
        if len(self.atom_feature_sizes) != 9 or len(self.bond_feature_sizes) != 3:
            raise ValueError("expected 9 atom and 3 bond feature tables (OGB featurisation)")

    @property
    def chirality_rows(self) -> int:
        """Rows of the chirality table: 4 (ogb <= 1.3.5) or 5 (ogb >= 1.3.6)."""
        return self.atom_feature_sizes[1]

    @classmethod
    def from_state_dicts(cls, molecule_state: Mapping[str, torch.Tensor],
                         mol2latent_state: Mapping[str, torch.Tensor]) -> GINConfig:
        """Read the sizes off ``molecule_model.pth`` and ``mol2latent_model.pth``.

        Raises:
            KeyError: a tensor the layout always has is missing (not a MoleculeSTM-Graph
                checkpoint).
        """
        atom = _NODE + "atom_encoder.atom_embedding_list.{}.weight"
        bond = _NODE + "gnns.0.bond_encoder.bond_embedding_list.{}.weight"
        layers = {int(k[len(_NODE + "gnns."):].split(".")[0]) for k in molecule_state
                  if k.startswith(_NODE + "gnns.")}
        emb_dim = int(molecule_state[atom.format(0)].shape[1])
        return cls(
            num_layer=len(layers),
            emb_dim=emb_dim,
            latent_dim=int(mol2latent_state["weight"].shape[0]),
            atom_feature_sizes=tuple(int(molecule_state[atom.format(i)].shape[0])
                                     for i in range(9)),
            bond_feature_sizes=tuple(int(molecule_state[bond.format(i)].shape[0])
                                     for i in range(3)),
            num_tasks=int(molecule_state["graph_pred_linear.weight"].shape[0]),
        )


def _embedding_tables(sizes: Sequence[int], dim: int) -> nn.ModuleList:
    """One Xavier-initialised embedding per categorical column (as OGB initialises them)."""
    tables = nn.ModuleList(nn.Embedding(n, dim) for n in sizes)
    for table in tables:
        nn.init.xavier_uniform_(table.weight)
    return tables


def _sum_embeddings(tables: nn.ModuleList, codes: torch.Tensor) -> torch.Tensor:
    """Sum over columns of ``tables[k](codes[:, k])``."""
    if codes.shape[-1] != len(tables):
        raise ValueError(f"expected {len(tables)} feature columns, got {codes.shape[-1]}")
    out = tables[0](codes[:, 0])
    for k in range(1, len(tables)):
        out = out + tables[k](codes[:, k])
    return out


class AtomEncoder(nn.Module):
    """Atom features ``[N, 9]`` -> ``[N, d]``: the sum of 9 embeddings (OGB ``AtomEncoder``)."""

    def __init__(self, sizes: Sequence[int], dim: int):
        super().__init__()
        self.atom_embedding_list = _embedding_tables(sizes, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _sum_embeddings(self.atom_embedding_list, x)


class BondEncoder(nn.Module):
    """Bond features ``[E, 3]`` -> ``[E, d]``: the sum of 3 embeddings (OGB ``BondEncoder``)."""

    def __init__(self, sizes: Sequence[int], dim: int):
        super().__init__()
        self.bond_embedding_list = _embedding_tables(sizes, dim)

    def forward(self, edge_attr: torch.Tensor) -> torch.Tensor:
        return _sum_embeddings(self.bond_embedding_list, edge_attr)


class GINConv(nn.Module):
    """GIN layer with bond embeddings added to the messages (GraphMVP / OGB variant)."""

    def __init__(self, dim: int, bond_sizes: Sequence[int]):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.BatchNorm1d(2 * dim), nn.ReLU(),
                                 nn.Linear(2 * dim, dim))
        self.eps = nn.Parameter(torch.zeros(1))
        self.bond_encoder = BondEncoder(bond_sizes, dim)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor,
                edge_attr: torch.Tensor) -> torch.Tensor:
        """``MLP((1 + eps) h_i + sum_j ReLU(h_j + e_ji))``; edges run ``edge_index[0] -> [1]``."""
        source, target = edge_index[0], edge_index[1]
        messages = F.relu(h.index_select(0, source) + self.bond_encoder(edge_attr))
        summed = torch.zeros_like(h).index_add_(0, target, messages)
        return self.mlp((1 + self.eps) * h + summed)


class GIN(nn.Module):
    """Node encoder (upstream ``GNN`` with ``gnn_type="gin"``, ``JK="last"``)."""

    def __init__(self, config: GINConfig):
        super().__init__()
        self.num_layer = config.num_layer
        self.atom_encoder = AtomEncoder(config.atom_feature_sizes, config.emb_dim)
        self.gnns = nn.ModuleList(GINConv(config.emb_dim, config.bond_feature_sizes)
                                  for _ in range(config.num_layer))
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(config.emb_dim)
                                         for _ in range(config.num_layer))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                edge_attr: torch.Tensor) -> torch.Tensor:
        """Node representations of the last layer ``[N, emb_dim]``."""
        h = self.atom_encoder(x)
        for layer, (conv, norm) in enumerate(zip(self.gnns, self.batch_norms)):
            h = norm(conv(h, edge_index, edge_attr))
            if layer < self.num_layer - 1:  # no ReLU after the last layer
                h = F.relu(h)
        return h


def mean_pool(nodes: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """Mean of the node rows of each graph ``[num_graphs, d]`` (PyG ``global_mean_pool``)."""
    sums = nodes.new_zeros(num_graphs, nodes.shape[1]).index_add_(0, batch, nodes)
    counts = torch.bincount(batch, minlength=num_graphs).clamp(min=1).to(nodes.dtype)
    return sums / counts.unsqueeze(1)


class GraphEncoder(nn.Module):
    """Upstream ``GNN_graphpred`` (``graph_pooling="mean"``): returns the pooled graph
    representation; the ``graph_pred_linear`` head is kept only so checkpoints load strictly."""

    def __init__(self, config: GINConfig):
        super().__init__()
        self.molecule_node_model = GIN(config)
        self.graph_pred_linear = nn.Linear(config.emb_dim, config.num_tasks)

    def forward(self, graphs: GraphBatch) -> torch.Tensor:
        nodes = self.molecule_node_model(graphs.x, graphs.edge_index, graphs.edge_attr)
        return mean_pool(nodes, graphs.batch, graphs.num_graphs)


class MoleculeTower(nn.Module):
    """``mol2latent(molecule_model(graph))``: the 256-d molecule embedding of MoleculeSTM
    (``get_molecule_repr_MoleculeSTM`` with ``molecule_type="Graph"``)."""

    def __init__(self, config: GINConfig):
        super().__init__()
        self.config = config
        self.molecule_model = GraphEncoder(config)
        self.mol2latent = nn.Linear(config.emb_dim, config.latent_dim)

    def forward(self, graphs: GraphBatch) -> torch.Tensor:
        return self.mol2latent(self.molecule_model(graphs))
