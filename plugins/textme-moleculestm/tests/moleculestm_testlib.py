"""Shared helpers of the moleculestm tests: the published checkpoint layouts written out from
the upstream sources, checkpoint folders in that layout with random weights, a tiny WordPiece
tokenizer, and a per-graph loop reference of the GIN.

Layout sources (read, not imported):

* ``chao1224/MoleculeSTM`` ``MoleculeSTM/models/molecule_gnn_model.py``: ``GNN`` (``atom_encoder``,
  ``gnns[i]`` = ``GINConv`` with ``mlp`` = Sequential(Linear(d, 2d), BatchNorm1d(2d), ReLU,
  Linear(2d, d)), ``eps`` = Parameter([0]), ``bond_encoder``; ``batch_norms[i]``) wrapped in
  ``GNN_graphpred`` (``molecule_node_model``, ``graph_pred_linear`` = Linear(d, num_tasks=1));
  ``scripts/pretrain.py`` ``save_model`` saves ``molecule_model.state_dict()`` and the two
  ``nn.Linear`` projections ``text2latent`` (768 -> 256) and ``mol2latent`` (300 -> 256).
* ``snap-stanford/ogb`` ``ogb/graphproppred/mol_encoder.py``: ``AtomEncoder.atom_embedding_list``,
  ``BondEncoder.bond_embedding_list``, sizes from ``ogb/utils/features.py``:
  (119, 4 | 5, 12, 12, 10, 6, 6, 2, 2) and (5, 6, 2).
* ``text_model.pth`` = ``AutoModel.from_pretrained('allenai/scibert_scivocab_uncased')
  .state_dict()``: a transformers 4.x ``BertModel`` with pooler, which stored the
  ``embeddings.position_ids`` buffer [1, 512]. SciBERT config: vocab 31090, 768 wide,
  12 layers, 3072 intermediate, 512 positions, 2 token types.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

Layout = dict[str, tuple[int, ...]]

OGB_ATOM_SIZES_1_3_6 = (119, 5, 12, 12, 10, 6, 6, 2, 2)
OGB_ATOM_SIZES_1_3_5 = (119, 4, 12, 12, 10, 6, 6, 2, 2)
OGB_BOND_SIZES = (5, 6, 2)


def molecule_model_layout(num_layer: int = 5, emb_dim: int = 300, chirality_rows: int = 5,
                          num_tasks: int = 1) -> Layout:
    """Keys and shapes of ``molecule_model.pth`` (``GNN_graphpred.state_dict()``)."""
    atom_sizes = OGB_ATOM_SIZES_1_3_6 if chirality_rows == 5 else OGB_ATOM_SIZES_1_3_5
    d, node = emb_dim, "molecule_node_model."
    layout: Layout = {}
    for k, rows in enumerate(atom_sizes):
        layout[f"{node}atom_encoder.atom_embedding_list.{k}.weight"] = (rows, d)
    for i in range(num_layer):
        conv = f"{node}gnns.{i}."
        layout[conv + "eps"] = (1,)
        layout[conv + "mlp.0.weight"] = (2 * d, d)
        layout[conv + "mlp.0.bias"] = (2 * d,)
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[conv + f"mlp.1.{name}"] = (2 * d,)
        layout[conv + "mlp.1.num_batches_tracked"] = ()
        layout[conv + "mlp.3.weight"] = (d, 2 * d)
        layout[conv + "mlp.3.bias"] = (d,)
        for k, rows in enumerate(OGB_BOND_SIZES):
            layout[conv + f"bond_encoder.bond_embedding_list.{k}.weight"] = (rows, d)
    for i in range(num_layer):
        norm = f"{node}batch_norms.{i}."
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[norm + name] = (d,)
        layout[norm + "num_batches_tracked"] = ()
    layout["graph_pred_linear.weight"] = (num_tasks, d)
    layout["graph_pred_linear.bias"] = (num_tasks,)
    return layout


def linear_layout(n_in: int, n_out: int) -> Layout:
    """``text2latent_model.pth`` / ``mol2latent_model.pth``: a bare ``nn.Linear``."""
    return {"weight": (n_out, n_in), "bias": (n_out,)}


def bert_layout(vocab: int = 31090, width: int = 768, layers: int = 12, ffn: int = 3072,
                positions: int = 512, token_types: int = 2,
                position_ids: bool = True) -> Layout:
    """Keys and shapes of ``text_model.pth`` (a ``BertModel`` with pooler, no prefix)."""
    layout: Layout = {}
    if position_ids:  # persistent buffer in transformers < 4.31
        layout["embeddings.position_ids"] = (1, positions)
    layout["embeddings.word_embeddings.weight"] = (vocab, width)
    layout["embeddings.position_embeddings.weight"] = (positions, width)
    layout["embeddings.token_type_embeddings.weight"] = (token_types, width)
    layout["embeddings.LayerNorm.weight"] = layout["embeddings.LayerNorm.bias"] = (width,)
    for i in range(layers):
        block = f"encoder.layer.{i}."
        for proj in ("query", "key", "value"):
            layout[block + f"attention.self.{proj}.weight"] = (width, width)
            layout[block + f"attention.self.{proj}.bias"] = (width,)
        layout[block + "attention.output.dense.weight"] = (width, width)
        layout[block + "attention.output.dense.bias"] = (width,)
        layout[block + "attention.output.LayerNorm.weight"] = (width,)
        layout[block + "attention.output.LayerNorm.bias"] = (width,)
        layout[block + "intermediate.dense.weight"] = (ffn, width)
        layout[block + "intermediate.dense.bias"] = (ffn,)
        layout[block + "output.dense.weight"] = (width, ffn)
        layout[block + "output.dense.bias"] = (width,)
        layout[block + "output.LayerNorm.weight"] = (width,)
        layout[block + "output.LayerNorm.bias"] = (width,)
    layout["pooler.dense.weight"] = (width, width)
    layout["pooler.dense.bias"] = (width,)
    return layout


def random_state(layout: Layout, seed: int) -> dict[str, torch.Tensor]:
    """Random tensors for a layout, with valid BatchNorm statistics and id buffers."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("position_ids"):
            state[key] = torch.arange(shape[-1]).unsqueeze(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("eps"):
            state[key] = torch.rand(shape, generator=gen) * 0.5
        elif "LayerNorm.weight" in key or (key.endswith(".weight") and len(shape) == 1):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[-1] if len(shape) > 1 else 1
            state[key] = torch.randn(shape, generator=gen) / math.sqrt(max(fan_in, 1))
    return state


TINY_TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 512, "type_vocab_size": 2,
}
TINY_GIN = {"num_layer": 3, "emb_dim": 16, "latent_dim": 24}

CORPUS = [
    "the molecule is an aromatic carboxylic acid", "an amino acid with a chiral centre",
    "a primary alcohol used as a solvent", "benzene is an aromatic hydrocarbon",
    "this compound is a salt of sodium and chloride", "an alkene with a double bond",
    "a drug that inhibits an enzyme", "a ketone with a carbonyl group",
]


def write_tokenizer(folder: Path) -> Any:
    """A tiny uncased WordPiece tokenizer in BERT's layout ([PAD]=0 ... [MASK]), saved to
    ``folder`` and returned."""
    from transformers import BertTokenizerFast

    words = sorted({w for line in CORPUS for w in line.split()})
    chars = sorted({c for line in CORPUS for c in line if c != " "})
    vocab_list = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *chars,
                  *(f"##{c}" for c in chars)]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def write_checkpoint_folder(folder: Path, vocab_size: int, chirality_rows: int = 5,
                            seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """A MoleculeSTM-Graph checkpoint folder with random weights in the upstream layout
    (``torch.save`` of plain state dicts, ``.pth``); returns the state dicts."""
    num_layer, d, latent = TINY_GIN["num_layer"], TINY_GIN["emb_dim"], TINY_GIN["latent_dim"]
    text = TINY_TEXT_CONFIG
    states = {
        "molecule_model": random_state(molecule_model_layout(num_layer, d, chirality_rows), seed),
        "mol2latent_model": random_state(linear_layout(d, latent), seed + 1),
        "text_model": random_state(bert_layout(
            vocab_size, text["hidden_size"], text["num_hidden_layers"],
            text["intermediate_size"], text["max_position_embeddings"], text["type_vocab_size"],
        ), seed + 2),
        "text2latent_model": random_state(linear_layout(text["hidden_size"], latent), seed + 3),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, state in states.items():
        torch.save(state, folder / f"{stem}.pth")
    return states


# -- a straightforward reference of the molecule branch --------------------------------------
def _batch_norm(x: torch.Tensor, state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    mean, var = state[prefix + "running_mean"], state[prefix + "running_var"]
    return (x - mean) / torch.sqrt(var + 1e-5) * state[prefix + "weight"] + state[prefix + "bias"]


def reference_molecule_embedding(graph: Any, state: dict[str, torch.Tensor],
                                 mol2latent: dict[str, torch.Tensor]) -> torch.Tensor:
    """One molecule through upstream's GIN, written as loops over atoms and edges and
    reading the weights straight from the checkpoint dicts (upstream key names)."""
    node = "molecule_node_model."
    layers = len({k.split(".")[2] for k in state if k.startswith(node + "gnns.")})
    x, edges, attrs = graph.x.tolist(), graph.edge_index.T.tolist(), graph.edge_attr.tolist()
    h = torch.stack([
        sum(state[f"{node}atom_encoder.atom_embedding_list.{k}.weight"][v]
            for k, v in enumerate(row)) for row in x
    ])
    for i in range(layers):
        conv = f"{node}gnns.{i}."
        new_rows = []
        for target in range(len(x)):
            total = (1 + state[conv + "eps"]) * h[target]
            for (source, dest), feats in zip(edges, attrs):
                if dest != target:
                    continue
                bond = sum(state[conv + f"bond_encoder.bond_embedding_list.{k}.weight"][v]
                           for k, v in enumerate(feats))
                total = total + torch.relu(h[source] + bond)
            hidden = F.linear(total, state[conv + "mlp.0.weight"], state[conv + "mlp.0.bias"])
            hidden = torch.relu(_batch_norm(hidden, state, conv + "mlp.1."))
            new_rows.append(F.linear(hidden, state[conv + "mlp.3.weight"],
                                     state[conv + "mlp.3.bias"]))
        h = _batch_norm(torch.stack(new_rows), state, f"{node}batch_norms.{i}.")
        if i < layers - 1:
            h = torch.relu(h)
    pooled = h.mean(dim=0)
    return F.linear(pooled, mol2latent["weight"], mol2latent["bias"])
