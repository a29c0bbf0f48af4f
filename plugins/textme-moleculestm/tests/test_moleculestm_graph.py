"""The molecule branch without the encoder: OGB featurisation checked by hand on known molecules,
the batched GIN against a per-graph loop reference, and the full-size published layouts."""

from __future__ import annotations

import pytest
import torch
from moleculestm_testlib import (
    bert_layout,
    linear_layout,
    molecule_model_layout,
    random_state,
    reference_molecule_embedding,
)
from rdkit import Chem
from textme_moleculestm.features import (
    UnlistedChiralityError,
    ATOM_FEATURE_SIZES,
    ATOM_FEATURE_SIZES_OGB_1_3_5,
    BOND_FEATURE_SIZES,
    atom_features,
    bond_features,
    collate_graphs,
    mol_to_graph,
)
from textme_moleculestm.gin import GINConfig, MoleculeTower

MOLECULES = ["CCO", "c1ccccc1C(=O)O", "N[C@@H](C)C(=O)O", "[Na+].[Cl-]", "C", "F/C=C\\F",
             "CC(=O)Nc1ccc(O)cc1", "C1CC2CCC1C2"]


def graph(smiles: str, chirality_rows: int = 5):
    return mol_to_graph(Chem.MolFromSmiles(smiles), chirality_rows)


# -- featurisation -------------------------------------------------------------------------
def test_table_sizes_are_ogbs():
    assert ATOM_FEATURE_SIZES == (119, 5, 12, 12, 10, 6, 6, 2, 2)  # ogb >= 1.3.6
    assert ATOM_FEATURE_SIZES_OGB_1_3_5 == (119, 4, 12, 12, 10, 6, 6, 2, 2)
    assert BOND_FEATURE_SIZES == (5, 6, 2)


def test_ogbs_own_documented_example():
    """ogb/utils/features.py: Cl[C@H](/C=C/C)Br, atom 1 and bond 2."""
    mol = Chem.MolFromSmiles("Cl[C@H](/C=C/C)Br")
    assert atom_features(mol.GetAtomWithIdx(1)) == [5, 2, 4, 5, 1, 0, 2, 0, 0]
    assert bond_features(mol.GetBondWithIdx(2)) == [1, 2, 0]  # double, STEREOE, not conjugated


def test_ethanol_by_hand():
    g = graph("CCO")
    # [Z-1, chirality, total degree, charge+5, total H, radicals, hybridisation, arom, ring]
    assert g.x.tolist() == [[5, 0, 4, 5, 3, 0, 2, 0, 0],   # CH3: degree 4 counts the Hs
                            [5, 0, 4, 5, 2, 0, 2, 0, 0],   # CH2
                            [7, 0, 2, 5, 1, 0, 2, 0, 0]]   # OH
    assert g.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]  # both directions, no loops
    assert g.edge_attr.tolist() == [[0, 0, 0]] * 4  # single, STEREONONE, not conjugated
    assert g.x.dtype == g.edge_index.dtype == g.edge_attr.dtype == torch.long


def test_aromatic_ring_and_carbonyl_bonds():
    g = graph("c1ccccc1C(=O)O")
    ring = g.x[:6].tolist()
    assert ring[0] == [5, 0, 3, 5, 1, 0, 1, 1, 1]           # aromatic CH: SP2, in ring
    assert ring[5] == [5, 0, 3, 5, 0, 0, 1, 1, 1]           # ring carbon bearing the acid
    bonds = {tuple(g.edge_index[:, e].tolist()): g.edge_attr[e].tolist()
             for e in range(g.edge_index.shape[1])}
    assert bonds[(0, 1)] == bonds[(1, 0)] == [3, 0, 1]      # aromatic, conjugated
    assert bonds[(6, 7)] == [1, 0, 1]                       # C=O: double, conjugated
    assert bonds[(5, 6)] == [0, 0, 1]                       # ring-C(=O): single, conjugated
    assert g.edge_index.shape == (2, 2 * 9)


def test_chirality_charge_radical_and_stereo_bonds():
    r, s = graph("N[C@@H](C)C(=O)O"), graph("N[C@H](C)C(=O)O")
    assert r.x[1].tolist() == [5, 1, 4, 5, 1, 0, 2, 0, 0]   # @@ -> CHI_TETRAHEDRAL_CW
    assert s.x[1].tolist() == [5, 2, 4, 5, 1, 0, 2, 0, 0]   # @  -> CHI_TETRAHEDRAL_CCW
    assert graph("[NH4+]").x.tolist() == [[6, 0, 4, 6, 4, 0, 2, 0, 0]]
    assert graph("CC(=O)[O-]").x[3].tolist() == [7, 0, 1, 4, 0, 0, 1, 0, 0]
    assert graph("[CH3]").x.tolist() == [[5, 0, 3, 5, 3, 1, 2, 0, 0]]  # one radical electron
    assert graph("F/C=C\\F").edge_attr[2].tolist() == [1, 1, 0]         # STEREOZ
    assert graph("F/C=C/F").edge_attr[2].tolist() == [1, 2, 0]          # STEREOE


def test_misc_rows_and_the_two_chirality_tables():
    assert graph("*C").x[0].tolist()[0] == 118  # dummy atom -> atomic-number misc row
    assert graph("*C").x[0].tolist()[6] == 5    # hybridisation UNSPECIFIED -> misc
    pt = "F[Pt@SP1](Cl)(Br)I"                   # CHI_SQUAREPLANAR: not in OGB's list
    assert graph(pt, chirality_rows=5).x[1, 1].item() == 4  # ogb >= 1.3.6: misc
    with pytest.raises(UnlistedChiralityError, match="atom 1 has chirality CHI_SQUAREPLANAR"):
        graph(pt, chirality_rows=4)                 # ogb <= 1.3.5: list.index raises
    other = Chem.MolFromSmiles("FC(Cl)(Br)I")
    other.GetAtomWithIdx(1).SetChiralTag(Chem.ChiralType.CHI_OTHER)  # listed by both versions
    assert mol_to_graph(other, 4).x[1, 1].item() == mol_to_graph(other, 5).x[1, 1].item() == 3
    listed = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER")
    unlisted = [name for name in Chem.ChiralType.names if name not in listed]
    assert "CHI_SQUAREPLANAR" in unlisted  # RDKit >= 2022.09
    for name in unlisted:  # every tag ogb does not list: misc with 5 rows, an error with 4
        other.GetAtomWithIdx(1).SetChiralTag(Chem.ChiralType.names[name])
        assert mol_to_graph(other, 5).x[1, 1].item() == 4, name
        with pytest.raises(UnlistedChiralityError, match=name):
            mol_to_graph(other, 4)
    with pytest.raises(ValueError, match="4 or 5"):
        graph("C", chirality_rows=6)


def test_atropisomer_stereo_counts_as_none():
    mol = Chem.MolFromSmiles("Cc1cccc(C)c1-c1c(C)cccc1C")
    bond = mol.GetBondBetweenAtoms(7, 8)
    bond.SetStereoAtoms(1, 9)
    bond.SetStereo(Chem.BondStereo.STEREOATROPCW)
    assert str(bond.GetStereo()) == "STEREOATROPCW"
    assert bond_features(bond)[1] == 0


def test_molecules_without_bonds_and_without_atoms():
    salt = graph("[Na+].[Cl-]")
    assert salt.num_nodes == 2
    assert salt.edge_index.shape == (2, 0) and salt.edge_attr.shape == (0, 3)
    with pytest.raises(ValueError, match="no atoms"):
        mol_to_graph(Chem.MolFromSmiles(""))


def test_every_index_fits_its_table():
    for smiles in MOLECULES + ["[Fe+3]", "O=[N+]([O-])c1ccccc1", "C#N", "[2H]C"]:
        g = graph(smiles)
        assert (g.x < torch.tensor(ATOM_FEATURE_SIZES)).all(), smiles
        if g.edge_attr.numel():
            assert (g.edge_attr < torch.tensor(BOND_FEATURE_SIZES)).all(), smiles


def test_collate_offsets_edges_into_one_block_diagonal_graph():
    graphs = [graph("CCO"), graph("[Na+].[Cl-]"), graph("C=O")]
    batch = collate_graphs(graphs)
    assert batch.num_graphs == 3 and batch.x.shape == (7, 9)
    assert batch.batch.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert batch.edge_index.tolist() == [[0, 1, 1, 2, 5, 6], [1, 0, 2, 1, 6, 5]]
    assert batch.edge_attr.shape == (6, 3)


# -- the GIN -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tower_and_states():
    """A tiny GIN whose weights come from a random checkpoint in the upstream layout."""
    config = GINConfig(num_layer=3, emb_dim=16, latent_dim=8)
    molecule = random_state(molecule_model_layout(3, 16, 5), seed=3)
    mol2latent = random_state(linear_layout(16, 8), seed=4)
    tower = MoleculeTower(config)
    tower.molecule_model.load_state_dict(molecule, strict=True)
    tower.mol2latent.load_state_dict(mol2latent, strict=True)
    return tower.eval(), molecule, mol2latent


def test_batched_gin_matches_a_per_graph_loop_reference(tower_and_states):
    tower, molecule, mol2latent = tower_and_states
    graphs = [graph(s) for s in MOLECULES]
    with torch.no_grad():
        batched = tower(collate_graphs(graphs))
    reference = torch.stack([reference_molecule_embedding(g, molecule, mol2latent)
                             for g in graphs])
    assert batched.shape == (len(MOLECULES), 8)
    torch.testing.assert_close(batched, reference, atol=2e-5, rtol=1e-4)


def test_batching_and_order_do_not_change_a_molecule(tower_and_states):
    tower = tower_and_states[0]
    graphs = [graph(s) for s in MOLECULES]
    with torch.no_grad():
        together = tower(collate_graphs(graphs))
        alone = torch.cat([tower(collate_graphs([g])) for g in graphs])
        reversed_ = tower(collate_graphs(graphs[::-1])).flip(0)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together, reversed_, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_last_layer_has_no_relu_and_eps_is_learnable(tower_and_states):
    tower, molecule, _ = tower_and_states
    with torch.no_grad():
        nodes = tower.molecule_model.molecule_node_model(*_tensors(collate_graphs([graph("CCO")])))
    assert (nodes < 0).any()  # BatchNorm output of the last layer, not ReLU'd
    eps = tower.molecule_model.molecule_node_model.gnns[0].eps
    assert eps.requires_grad and eps.shape == (1,)
    assert torch.equal(eps.detach(), molecule["molecule_node_model.gnns.0.eps"])


def _tensors(batch):
    return batch.x, batch.edge_index, batch.edge_attr


# -- full-size layouts ---------------------------------------------------------------------
def test_full_size_graph_branch_matches_the_published_layout():
    with torch.device("meta"):
        tower = MoleculeTower(GINConfig())
    got = {k: tuple(v.shape) for k, v in tower.molecule_model.state_dict().items()}
    expected = molecule_model_layout(num_layer=5, emb_dim=300, chirality_rows=5)
    assert sorted(set(got) ^ set(expected)) == []
    assert {k for k in got if got[k] != expected[k]} == set()
    assert {k: tuple(v.shape) for k, v in tower.mol2latent.state_dict().items()} == \
        linear_layout(300, 256)
    assert len(expected) == 9 + 5 * (1 + 2 + 5 + 2 + 3) + 5 * 5 + 2


@pytest.mark.parametrize("rows", [4, 5])
def test_sizes_are_read_from_a_full_size_checkpoint(rows):
    with torch.device("meta"):
        state = {k: torch.empty(s) for k, s in molecule_model_layout(chirality_rows=rows).items()}
        latent = {k: torch.empty(s) for k, s in linear_layout(300, 256).items()}
    config = GINConfig.from_state_dicts(state, latent)
    assert (config.num_layer, config.emb_dim, config.latent_dim) == (5, 300, 256)
    assert config.num_tasks == 1
    assert config.chirality_rows == rows and config.bond_feature_sizes == (5, 6, 2)


def test_full_size_text_branch_matches_text_model_pth():
    from textme_moleculestm.text import SCIBERT_CONFIG, TextTower

    with torch.device("meta"):
        tower = TextTower(SCIBERT_CONFIG, 256)
    got = {k: tuple(v.shape) for k, v in tower.text_model.state_dict().items()}
    published = bert_layout()  # as saved by transformers 4.x, with embeddings.position_ids
    assert published["embeddings.position_ids"] == (1, 512)  # dropped on load (checked)
    expected = {k: s for k, s in published.items() if k != "embeddings.position_ids"}
    assert got == expected and len(got) == 5 + 12 * 16 + 2
    assert {k: tuple(v.shape) for k, v in tower.text2latent.state_dict().items()} == \
        linear_layout(768, 256)
