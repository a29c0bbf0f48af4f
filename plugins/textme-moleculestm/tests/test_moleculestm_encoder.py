"""The ``moleculestm`` encoder on a tiny checkpoint folder in the upstream layout: both branches
against independent references, every input kind, invalid molecules (raise / skip), strict
loading, and training end to end through TextME with the real MiniLM anchor."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from moleculestm_testlib import (
    CORPUS,
    TINY_TEXT_CONFIG,
    reference_molecule_embedding,
    write_checkpoint_folder,
)
from rdkit import Chem
from textme_moleculestm import (
    CheckpointError,
    InvalidMoleculeError,
    MoleculeSTMEncoder,
    MoleculeSTMLoadError,
    embed_molecules,
    parse_molecules,
    read_sdf,
)
from textme_moleculestm.features import mol_to_graph
from textme_moleculestm.text import TokenizerError, check_tokenizer

import textme_sdk as tm
from textme_sdk import errors as core_errors
from textme_sdk.errors import (
    EmptyInputError,
    EncoderLoadError,
    InvalidInputError,
    MissingInputFileError,
)
from textme_sdk.testing import check_encoder, check_registration

SMILES = ["CCO", "c1ccccc1C(=O)O", "N[C@@H](C)C(=O)O", "[Na+].[Cl-]", "CC(=O)Nc1ccc(O)cc1",
          "C1CCCCC1", "O=C=O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C"]


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def write_sdf(path: Path, smiles: list[str]) -> Path:
    writer = Chem.SDWriter(str(path))
    for s in smiles:
        writer.write(Chem.MolFromSmiles(s))
    writer.close()
    return path


# -- construction and registration ---------------------------------------------------------
def test_registered_lazily_with_its_licence():
    info = check_registration("moleculestm", heavy=("transformers", "rdkit"))
    assert info["modality"] == "molecule" and info["metadata"]["extra"] == "molecule"
    assert "non-commercial" in info["metadata"]["license"], info["metadata"]
    assert info["embedding_dim"] == 256 and info["config"]["model"] == "chao1224/MoleculeSTM"


def test_config_round_trips_and_stores_absolute_paths(tiny_kwargs, checkpoint, monkeypatch):
    folder = checkpoint[0]
    monkeypatch.chdir(folder.parent)
    enc = MoleculeSTMEncoder(**{**tiny_kwargs, "model": folder.name}, on_invalid="skip")
    cfg = enc.config()
    assert cfg["model"] == str(folder) and cfg["on_invalid"] == "skip"
    assert MoleculeSTMEncoder(**cfg).config() == cfg
    json.dumps(cfg)
    hub = MoleculeSTMEncoder(subfolder="pretrained_MoleculeSTM/run", revision="abc")
    assert hub.config() == {"model": "chao1224/MoleculeSTM",
                            "subfolder": "pretrained_MoleculeSTM/run", "revision": "abc",
                            "on_invalid": "raise"}  # the 256-d default is stored once loaded
    with pytest.raises(InvalidInputError, match="'raise' or 'skip'"):
        MoleculeSTMEncoder(on_invalid="ignore")


PRETRAINED_RUN = "pretrained_MoleculeSTM/SciBERT-Graph-3e-5-1-1e-4-1-InfoNCE-0.1-32-32"


def test_default_is_the_pretrained_run_and_demo_is_selectable():
    from textme_moleculestm import DEFAULT_SUBFOLDER, DEMO_SUBFOLDER, NAMED_SUBFOLDERS
    from textme_moleculestm.checkpoints import resolve_subfolder

    assert DEFAULT_SUBFOLDER == PRETRAINED_RUN and DEMO_SUBFOLDER == "demo/demo_checkpoints_Graph"
    assert NAMED_SUBFOLDERS == {"pretrained": PRETRAINED_RUN, "demo": DEMO_SUBFOLDER}
    assert resolve_subfolder(None) == resolve_subfolder("pretrained") == PRETRAINED_RUN
    assert resolve_subfolder("demo") == DEMO_SUBFOLDER
    other = "pretrained_MoleculeSTM/SciBERT-Graph-1e-5-1-1e-4-1-InfoNCE-0.1-32-32"
    assert resolve_subfolder(other) == other
    reg = {r.name: r for r in tm.list_encoders()}["moleculestm"]
    assert reg.metadata["default_model"] == f"chao1224/MoleculeSTM/{PRETRAINED_RUN}"
    # bundles always record the run, so they keep their weights whatever the default is
    assert MoleculeSTMEncoder().config() == {"model": "chao1224/MoleculeSTM",
                                             "subfolder": PRETRAINED_RUN, "on_invalid": "raise"}
    demo = MoleculeSTMEncoder(subfolder="demo")
    assert demo.config() == {"model": "chao1224/MoleculeSTM", "subfolder": DEMO_SUBFOLDER,
                             "on_invalid": "raise"}
    assert demo.source == f"chao1224/MoleculeSTM/{DEMO_SUBFOLDER}"
    assert MoleculeSTMEncoder(**demo.config()).config() == demo.config()


def test_hub_runs_are_fetched_from_their_folders(tiny_kwargs, tmp_path, monkeypatch):
    """Both Hub folders in upstream's layout (a local stand-in for hf_hub_download): the default
    loads the pretrained run's four files, ``subfolder="demo"`` the toy ones."""
    import huggingface_hub

    vocab = tiny_kwargs["text_config"]["vocab_size"]
    repo = tmp_path / "hub"
    write_checkpoint_folder(repo / PRETRAINED_RUN, vocab_size=vocab, seed=11)
    write_checkpoint_folder(repo / "demo" / "demo_checkpoints_Graph", vocab_size=vocab, seed=12)
    fetched = []

    def fake_download(repo_id, filename, subfolder=None, revision=None, cache_dir=None):
        fetched.append((repo_id, subfolder, filename))
        return str(repo / subfolder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    kwargs = {k: v for k, v in tiny_kwargs.items() if k != "model"}
    pretrained = MoleculeSTMEncoder(**kwargs, device="cpu").encode_modal(SMILES[:3])
    assert fetched == [("chao1224/MoleculeSTM", PRETRAINED_RUN, f"{stem}.pth") for stem in
                       ("text_model", "text2latent_model", "molecule_model", "mol2latent_model")]
    fetched.clear()
    demo = MoleculeSTMEncoder(**kwargs, subfolder="demo", device="cpu").encode_modal(SMILES[:3])
    assert {f[1] for f in fetched} == {"demo/demo_checkpoints_Graph"} and len(fetched) == 4
    assert not torch.allclose(pretrained, demo, atol=1e-3)  # different weights were loaded


# -- both branches against references ------------------------------------------------------
def test_molecules_match_the_loop_reference(tiny, checkpoint):
    states = checkpoint[1]
    got = tiny.encode_modal(SMILES)
    assert got.shape == (len(SMILES), 24) and got.dtype == torch.float32
    assert torch.allclose(got.norm(dim=1), torch.ones(len(SMILES)), atol=1e-5)
    expected = unit(torch.stack([
        reference_molecule_embedding(mol_to_graph(Chem.MolFromSmiles(s)),
                                     states["molecule_model"], states["mol2latent_model"])
        for s in SMILES
    ]))
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_text_matches_upstreams_tokenisation_and_pooler(tiny, checkpoint, tokenizer):
    """Upstream pads to 512 with a bool mask and projects pooler_output with text2latent."""
    from transformers import BertConfig, BertModel

    states = checkpoint[1]
    vocab = states["text_model"]["embeddings.word_embeddings.weight"].shape[0]
    bert = BertModel(BertConfig(**TINY_TEXT_CONFIG, vocab_size=vocab)).eval()
    bert.load_state_dict({k: v for k, v in states["text_model"].items()
                          if k != "embeddings.position_ids"})
    texts = [CORPUS[0], CORPUS[3], "benzene " * 700]  # the last one is cut to 512 tokens
    tokens = tokenizer(texts, truncation=True, max_length=512, padding="max_length",
                       return_tensors="pt")
    assert tokens["input_ids"].shape == (3, 512)
    with torch.no_grad():
        pooled = bert(input_ids=tokens["input_ids"],
                      attention_mask=tokens["attention_mask"].bool()).pooler_output
        expected = unit(torch.nn.functional.linear(pooled, states["text2latent_model"]["weight"],
                                                   states["text2latent_model"]["bias"]))
    got = tiny.encode_text(texts)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_deterministic_and_independent_of_batching(tiny):
    first = tiny.encode_modal(SMILES)
    assert torch.equal(first, tiny.encode_modal(SMILES))
    torch.testing.assert_close(tiny.encode_modal(SMILES, batch_size=1), first, atol=1e-5, rtol=0)
    torch.testing.assert_close(tiny.encode_modal(SMILES[::-1], batch_size=3), first.flip(0),
                               atol=1e-5, rtol=0)
    texts = CORPUS[:5]
    torch.testing.assert_close(tiny.encode_text(texts, batch_size=2), tiny.encode_text(texts),
                               atol=1e-5, rtol=0)


# -- input kinds ---------------------------------------------------------------------------
def test_every_input_kind_gives_the_smiles_embedding(tiny, tmp_path):
    smiles = "N[C@@H](C)C(=O)O"
    mol = Chem.MolFromSmiles(smiles)
    mol_file = tmp_path / "alanine.mol"
    Chem.MolToMolFile(mol, str(mol_file))
    sdf_file = write_sdf(tmp_path / "alanine.sdf", [smiles])
    upper = tmp_path / "ALANINE.SDF"
    upper.write_bytes(sdf_file.read_bytes())
    # hydrogens written explicitly to the file are removed on reading, as upstream read SDFs
    with_h = tmp_path / "alanine_h.sdf"
    writer = Chem.SDWriter(str(with_h))
    writer.write(Chem.AddHs(mol))
    writer.close()
    reference = tiny.encode_modal([smiles])[0]
    inputs = [mol, mol_file, str(mol_file), sdf_file, str(sdf_file), str(upper), with_h]
    out = tiny.encode_modal(inputs)
    for i, row in enumerate(out):
        assert torch.allclose(row, reference, atol=1e-5), f"input kind {i} differs"
    # the stereo centre is read from the file (2D coordinates + wedges), not lost
    other = tiny.encode_modal(["N[C@H](C)C(=O)O"])[0]
    assert not torch.allclose(other, reference, atol=1e-4)


def test_multi_molecule_sdf_is_one_input_per_molecule(tiny, tmp_path):
    sdf = write_sdf(tmp_path / "library.sdf", SMILES[:4])
    with pytest.raises(InvalidInputError, match="holds 4 molecules.*read_sdf"):
        tiny.encode_modal([sdf])
    mols = read_sdf(sdf)
    assert len(mols) == 4
    torch.testing.assert_close(tiny.encode_modal(mols), tiny.encode_modal(SMILES[:4]),
                               atol=1e-5, rtol=0)


def test_read_sdf_raises_on_or_skips_unreadable_records(tmp_path):
    good = write_sdf(tmp_path / "good.sdf", ["CCO", "c1ccccc1"]).read_text()
    records = good.split("$$$$\n")
    broken = records[0] + "$$$$\n" + "junk\n\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n" \
        "    0.0 0.0 0.0 Xx  0  0\nM  END\n$$$$\n" + records[1] + "$$$$\n"
    path = tmp_path / "broken.sdf"
    path.write_text(broken)
    with pytest.raises(InvalidMoleculeError, match="record 1") as info:
        read_sdf(path)
    assert info.value.index == 1
    assert [Chem.MolToSmiles(m) for m in read_sdf(path, on_invalid="skip")] == ["CCO", "c1ccccc1"]
    with pytest.raises(MissingInputFileError):
        read_sdf(tmp_path / "none.sdf")


# -- invalid molecules ---------------------------------------------------------------------
def test_invalid_smiles_raise_with_their_index(tiny):
    with pytest.raises(InvalidMoleculeError) as info:
        tiny.encode_modal(["CCO", "c1ccccc1", "C1CC", "CCN"])
    err = info.value
    assert isinstance(err, InvalidInputError)
    assert (err.index, err.value) == (2, "C1CC")
    assert "input 2" in str(err) and "'C1CC'" in str(err) and "on_invalid='skip'" in str(err)
    cases = [("C(C)(C)(C)(C)C", "valence"), ("c1cccc1", "kekulize"), ("", "no atoms"),
             ("not a molecule", "syntax error")]
    for bad, reason in cases:
        with pytest.raises(InvalidMoleculeError, match=reason):
            tiny.encode_modal(["CCO", bad])


def test_skip_leaves_invalid_molecules_out_and_reports_them(tiny_kwargs, tiny, caplog):
    inputs = ["CCO", "C1CC", None, "c1ccccc1", "", "C(C)(C)(C)(C)C", "CCN"]
    skipper = MoleculeSTMEncoder(**tiny_kwargs, on_invalid="skip", device="cpu")
    with caplog.at_level("WARNING"):
        out = skipper.encode_modal(inputs)
    assert "skipped 4 invalid molecule(s) of 7" in caplog.text and "1 ('C1CC'" in caplog.text
    valid = ["CCO", "c1ccccc1", "CCN"]
    torch.testing.assert_close(out, tiny.encode_modal(valid), atol=1e-6, rtol=0)
    emb, kept = tiny.encode_molecules(inputs)  # works whatever the encoder's on_invalid
    assert kept == [0, 3, 6]
    torch.testing.assert_close(emb, out, atol=1e-6, rtol=0)
    none_valid, none_kept = tiny.encode_molecules(["C1CC", "xx"])
    assert none_valid.shape == (0, 24) and none_kept == []
    with pytest.raises(EmptyInputError, match="none of the 2 inputs is a valid molecule"):
        skipper.encode_modal(["C1CC", "xx"])
    with pytest.raises(InvalidMoleculeError, match="input 1 .*None"):
        tiny.encode_modal(["CCO", None])


def test_parse_molecules_reports_kept_and_skipped():
    parsed = parse_molecules(["CCO", "C1CC", "O"], on_invalid="skip")
    assert parsed.kept == [0, 2] and parsed.skipped == [1]
    assert [Chem.MolToSmiles(m) for m in parsed.mols] == ["CCO", "O"]
    with pytest.raises(InvalidMoleculeError):
        parse_molecules(["CCO", "C1CC"])


def test_bad_types_files_and_unsanitised_mols_raise_typed_errors(tiny, tmp_path):
    corrupt = tmp_path / "corrupt.mol"
    corrupt.write_text("this is not a mol block\n")
    folder = tmp_path / "mols.sdf"
    folder.mkdir()
    empty_sdf = tmp_path / "empty.sdf"
    empty_sdf.write_text("")
    cases = [
        ("CCO", InvalidInputError, "wrap it in a list"),
        (42, InvalidInputError, "expects a list of molecules"),
        ([42], InvalidInputError, "input 0 is a int.*SMILES strings"),
        ([b"CCO"], InvalidInputError, "is a bytes"),
        ([], EmptyInputError, "no inputs"),
        ([tmp_path / "missing.sdf"], MissingInputFileError, "not found"),
        (["missing.mol"], MissingInputFileError, "not found"),
        ([folder], InvalidInputError, "is a folder"),
        ([corrupt], InvalidMoleculeError, "could not read this MOL file"),
        ([empty_sdf], InvalidMoleculeError, "no molecule in the file"),
        ([Chem.MolFromSmiles("CCO", sanitize=False)], InvalidMoleculeError, "SanitizeMol"),
    ]
    for inputs, error, match in cases:
        with pytest.raises(error, match=match):
            tiny.encode_modal(inputs)
    assert tiny.encode_modal(["CCO"]).shape == (1, 24)  # still fine afterwards


# -- checkpoints ---------------------------------------------------------------------------
@pytest.fixture()
def folder_copy(checkpoint, tmp_path):
    """A writable copy of the tiny checkpoint folder."""
    for path in checkpoint[0].iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path


def test_local_checkpoints_load_strictly(tiny_kwargs, folder_copy):
    kwargs = {**tiny_kwargs, "model": str(folder_copy)}
    state = torch.load(folder_copy / "molecule_model.pth", weights_only=True)
    broken = dict(state)
    del broken["molecule_node_model.gnns.1.eps"]
    broken["molecule_node_model.extra.weight"] = torch.zeros(1)
    torch.save(broken, folder_copy / "molecule_model.pth")
    with pytest.raises(CheckpointError, match="1 missing .*gnns.1.eps.*1 unexpected"):
        MoleculeSTMEncoder(**kwargs).load()

    torch.save(state, folder_copy / "molecule_model.pth")
    mol2latent = torch.load(folder_copy / "mol2latent_model.pth", weights_only=True)
    torch.save({"weight": mol2latent["weight"][:, :-1], "bias": mol2latent["bias"]},
               folder_copy / "mol2latent_model.pth")
    with pytest.raises(CheckpointError, match="other shapes.*weight"):
        MoleculeSTMEncoder(**kwargs).load()

    torch.save(mol2latent, folder_copy / "mol2latent_model.pth")
    text = torch.load(folder_copy / "text_model.pth", weights_only=True)
    torch.save({**text, "embeddings.position_ids": text["embeddings.position_ids"].flip(-1)},
               folder_copy / "text_model.pth")
    with pytest.raises(CheckpointError, match="position_ids"):
        MoleculeSTMEncoder(**kwargs).load()

    (folder_copy / "text_model.pth").unlink()
    with pytest.raises(CheckpointError, match="lacks text_model.pth"):
        MoleculeSTMEncoder(**kwargs).load()


class _Payload:
    """Stands for arbitrary pickled objects, which weights_only loading refuses."""


def test_pickled_objects_are_refused(tiny_kwargs, folder_copy):
    torch.save({"weight": _Payload(), "bias": torch.zeros(1)}, folder_copy / "mol2latent_model.pth")
    with pytest.raises(CheckpointError, match="mol2latent_model.pth.*Unsupported global.*_Payload"):
        MoleculeSTMEncoder(**{**tiny_kwargs, "model": str(folder_copy)}).load()
    (folder_copy / "text2latent_model.pth").write_bytes(pickle.dumps({"weight": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="text2latent_model.pth.*Invalid magic number"):
        MoleculeSTMEncoder(**{**tiny_kwargs, "model": str(folder_copy)}).load()
    torch.save([torch.zeros(1)], folder_copy / "text2latent_model.pth")
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        MoleculeSTMEncoder(**{**tiny_kwargs, "model": str(folder_copy)}).load()


def test_safetensors_are_preferred_and_equal(tiny, tiny_kwargs, folder_copy):
    from safetensors.torch import save_file

    for stem in ("molecule_model", "mol2latent_model"):
        state = torch.load(folder_copy / f"{stem}.pth", weights_only=True)
        save_file({k: v.contiguous() for k, v in state.items()},
                  str(folder_copy / f"{stem}.safetensors"))
        (folder_copy / f"{stem}.pth").write_bytes(b"not a checkpoint")  # must not be read
    enc = MoleculeSTMEncoder(**{**tiny_kwargs, "model": str(folder_copy)}, device="cpu")
    torch.testing.assert_close(enc.encode_modal(SMILES[:3]), tiny.encode_modal(SMILES[:3]),
                               atol=0, rtol=0)


def test_four_row_chirality_table_of_older_ogb(tiny_kwargs, tmp_path):
    vocab = tiny_kwargs["text_config"]["vocab_size"]
    states = write_checkpoint_folder(tmp_path, vocab_size=vocab, chirality_rows=4, seed=7)
    enc = MoleculeSTMEncoder(**{**tiny_kwargs, "model": str(tmp_path)}, device="cpu")
    assert enc.chirality_rows == 4
    other = Chem.MolFromSmiles("FC(Cl)(Br)I")
    other.GetAtomWithIdx(1).SetChiralTag(Chem.ChiralType.CHI_OTHER)  # the table's last row
    for mol, row in ((other, 3), (Chem.MolFromSmiles("N[C@@H](C)C(=O)O"), 1)):
        graph = mol_to_graph(mol, chirality_rows=4)
        assert graph.x[1, 1].item() == row
        expected = unit(reference_molecule_embedding(graph, states["molecule_model"],
                                                     states["mol2latent_model"]))
        torch.testing.assert_close(enc.encode_modal([mol])[0], expected, atol=2e-5, rtol=1e-4)


def test_four_row_table_refuses_unlisted_chirality_as_ogb_1_3_5_does(tiny_kwargs, tmp_path):
    """ogb <= 1.3.5 raises on chirality tags it does not list; so does a 4-row checkpoint here
    (as an invalid molecule, which on_invalid='skip' and embed_molecules leave out)."""
    vocab = tiny_kwargs["text_config"]["vocab_size"]
    write_checkpoint_folder(tmp_path, vocab_size=vocab, chirality_rows=4, seed=7)
    kwargs = {**tiny_kwargs, "model": str(tmp_path)}
    enc = MoleculeSTMEncoder(**kwargs, device="cpu")
    platinum = "F[Pt@SP1](Cl)(Br)I"  # CHI_SQUAREPLANAR
    with pytest.raises(InvalidMoleculeError, match="input 1 .*CHI_SQUAREPLANAR.*4-row"):
        enc.encode_modal(["CCO", platinum])
    rows, kept = enc.encode_molecules(["CCO", platinum, "c1ccccc1"])
    assert kept == [0, 2]
    torch.testing.assert_close(rows, enc.encode_modal(["CCO", "c1ccccc1"]), atol=1e-6, rtol=0)
    skipping = MoleculeSTMEncoder(**kwargs, on_invalid="skip", device="cpu")
    assert skipping.encode_modal([platinum, "CCO"]).shape == (1, 24)
    five_rows = MoleculeSTMEncoder(**tiny_kwargs, device="cpu")  # ogb >= 1.3.6: the misc row
    assert five_rows.encode_modal([platinum]).shape == (1, 24)

    anchor = tm.get_anchor("minilm", device="cpu")  # the offline MiniLM (384-d)
    model = tm.TextME(anchor, device="cpu").add_modality(
        enc, tm.Projector(24, anchor.embedding_dim), tm.Offsets.zeros(24))
    out, kept = embed_molecules(model, ["CCO", platinum, "C1CC", "c1ccccc1"])
    assert kept == [0, 3] and out.shape == (2, anchor.embedding_dim)
    np.testing.assert_allclose(out, model.embed(["CCO", "c1ccccc1"], modality="molecule"),
                               atol=1e-6)


def test_useless_tokenizers_and_offline_hub_fail_clearly(tmp_path, monkeypatch, tokenizer):
    from transformers import BertTokenizer

    stub = BertTokenizer.from_pretrained("allenai/scibert_scivocab_uncased",
                                         cache_dir=str(tmp_path))  # transformers 5 offline stub
    with pytest.raises(TokenizerError, match="only 5 tokens"):
        check_tokenizer(stub, 31090, "test")
    with pytest.raises(TokenizerError, match="embeds only 50"):
        check_tokenizer(tokenizer, 50, "test")

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MoleculeSTMLoadError, match="pretrained_MoleculeSTM/SciBERT-Graph-3e-5-1-"
                       "1e-4-1-InfoNCE-0.1-32-32/text_model.pth.*offline"):
        MoleculeSTMEncoder(cache_dir=str(tmp_path)).load()
    with pytest.raises(MoleculeSTMLoadError,
                       match="demo/demo_checkpoints_Graph/text_model.pth.*offline"):
        MoleculeSTMEncoder(subfolder="demo", cache_dir=str(tmp_path)).load()
    with pytest.raises(MoleculeSTMLoadError, match="neither an existing folder nor a Hub"):
        MoleculeSTMEncoder(str(tmp_path / "no" / "such" / "folder")).load()


def test_requested_dimension_is_checked(tiny_kwargs):
    with pytest.raises(EncoderLoadError, match="produces 24-d embeddings, but embedding_dim=256"):
        MoleculeSTMEncoder(**tiny_kwargs, embedding_dim=256).load()
    assert issubclass(MoleculeSTMLoadError, EncoderLoadError)
    assert issubclass(CheckpointError, MoleculeSTMLoadError)
    assert issubclass(CheckpointError, core_errors.CheckpointError)
    assert issubclass(TokenizerError, MoleculeSTMLoadError)
    assert issubclass(TokenizerError, core_errors.TokenizerError)


# -- end to end ----------------------------------------------------------------------------
MOLECULE_POOL = [
    "CCO", "CCCO", "CCCCO", "CC(C)O", "OCCO", "CC(=O)O", "CCC(=O)O", "c1ccccc1", "Cc1ccccc1",
    "Oc1ccccc1", "Nc1ccccc1", "c1ccccc1C(=O)O", "CC(=O)Nc1ccc(O)cc1",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "N[C@@H](C)C(=O)O", "N[C@@H](CO)C(=O)O", "NCC(=O)O", "C1CCCCC1", "C1CCOC1", "CC(C)=O",
    "CCN(CC)CC", "ClCCl", "ClC(Cl)Cl", "O=C=O", "C#N", "CC#N", "c1ccncc1", "c1ccoc1", "c1ccsc1",
    "[Na+].[Cl-]", "OC(=O)CC(O)(CC(=O)O)C(=O)O", "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
]
DESCRIPTIONS = [
    f"{adjective} {noun}" for adjective in ("an aromatic", "a chiral", "a polar", "a small",
                                            "a charged", "a cyclic")
    for noun in ("carboxylic acid", "alcohol solvent", "amine base", "hydrocarbon ring",
                 "drug that inhibits an enzyme", "ketone with a carbonyl group",
                 "salt of sodium", "heterocycle with nitrogen")
]


def test_trains_end_to_end_and_reloads_from_the_bundle(tiny_kwargs, tmp_path):
    """offsets -> training -> embed SMILES -> save -> from_pretrained (textme_sdk.testing), then
    what is MoleculeSTM's own: skipping invalid molecules, and a bundle without offsets."""
    enc = tm.get_encoder("moleculestm", **tiny_kwargs, device="cpu")
    result = check_encoder(enc, DESCRIPTIONS, MOLECULE_POOL, tmp_path / "check", atol=1e-6,
                           bad_inputs=[("C1CC", InvalidMoleculeError)])  # unpaired samples
    model, emb = result.model, result.embeddings
    assert result.offsets.dim == 24
    stored = result.loaded.entry("molecule").encoder.config()
    assert stored == {**tiny_kwargs, "on_invalid": "raise", "embedding_dim": 24}
    # a config stored by earlier versions (defaults left out) rebuilds the same encoder
    assert tm.get_encoder("moleculestm", **tiny_kwargs, embedding_dim=24).config() == stored
    raw = model.embed(MOLECULE_POOL[:8], modality="molecule", use_offsets=False)
    assert not np.allclose(raw, emb, atol=1e-4)  # the no-offset ablation the paper recommends

    rows, kept = embed_molecules(model, ["CCO", "C1CC", "c1ccccc1", None])
    assert kept == [0, 2]
    np.testing.assert_allclose(rows, model.embed(["CCO", "c1ccccc1"], modality="molecule"),
                               atol=1e-6)
    nothing, none_kept = embed_molecules(model, ["C1CC"])
    assert nothing.shape == (0, 384) and none_kept == []

    # the recommended setting for MoleculeSTM: no offsets (zero centroids stored in the bundle)
    zero = tm.Offsets.zeros(enc.embedding_dim)
    plain = tm.train_projector(enc, model.anchor, DESCRIPTIONS, zero,
                               tm.TrainConfig(epochs=2, batch_size=16, seed=0),
                               cache=tmp_path / "check" / "cache")  # check_encoder's cache
    model.add_modality(enc, plain, zero, name="molecule-no-offsets")
    plain_emb = model.embed(MOLECULE_POOL[:8], modality="molecule-no-offsets")
    loaded = tm.TextME.from_pretrained(model.save_pretrained(tmp_path / "bundle"),
                                       anchor=model.anchor, device="cpu")
    assert loaded.entry("molecule-no-offsets").encoder.config() == enc.config()
    np.testing.assert_allclose(loaded.embed(MOLECULE_POOL[:8], modality="molecule"), emb,
                               atol=1e-6)
    np.testing.assert_allclose(loaded.embed(MOLECULE_POOL[:8], modality="molecule-no-offsets"),
                               plain_emb, atol=1e-6)
    with pytest.raises(InvalidMoleculeError, match="input 1"):
        loaded.embed(["CCO", "C1CC"], modality="molecule")
