"""The ``moleculestm`` encoder: MoleculeSTM-Graph's GIN molecule branch and SciBERT text branch,
both projected to MoleculeSTM's shared 256-d space (``mol2latent`` / ``text2latent``).

Weights come from a MoleculeSTM checkpoint folder (four ``.pth`` state dicts, see
:mod:`textme_moleculestm.checkpoints`): by default the pretrained run
``pretrained_MoleculeSTM/SciBERT-Graph-3e-5-1-1e-4-1-InfoNCE-0.1-32-32`` of the Hub repo
``chao1224/MoleculeSTM`` (``subfolder="demo"``: upstream's toy demo checkpoints), or any local
folder in the same layout. The tokenizer is ``allenai/scibert_scivocab_uncased`` (from the Hub
or its cache) or a local folder.

MoleculeSTM's other molecule branch (MegaMolBART on SMILES) needs Megatron and apex and is not
supported; the graph branch is the one this plugin ports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from textme_sdk import InputSpec, ModalityEncoder
from textme_sdk.encoders import absolute_path, overrides_batching
from textme_sdk.errors import EmptyInputError, InvalidInputError

from .checkpoints import (
    HUB_REPO,
    CheckpointError,
    checkpoint_paths,
    drop_stale_text_buffers,
    load_strict,
    read_state_dict,
    resolve_subfolder,
)
from .features import GraphBatch, MolGraph, UnlistedChiralityError, collate_graphs, mol_to_graph
from .molecules import (
    MOLECULE_EXTENSIONS,
    InvalidMoleculeError,
    OnInvalid,
    check_on_invalid,
    molecule_list,
    quiet_rdkit,
    to_mol,
)

logger = logging.getLogger(__name__)

__all__ = ["LICENSE", "MoleculeSTMEncoder", "embed_molecules"]

#: The licence of MoleculeSTM's code and released checkpoints (upstream ``LICENSE``).
LICENSE = ("NVIDIA Source Code License for MoleculeSTM: non-commercial use only (research or "
           "evaluation); applies to the MoleculeSTM checkpoints and code. SciBERT: Apache-2.0")
#: Inputs featurised per call of the base class (bounds memory for long input lists).
_CHUNK = 2048


class MoleculeSTMEncoder(ModalityEncoder):
    """MoleculeSTM-Graph as a textme-sdk molecule encoder (256-d).

    Args:
        model: a Hub repo id (default ``"chao1224/MoleculeSTM"``) or a local folder holding
            ``text_model.pth``, ``text2latent_model.pth``, ``molecule_model.pth`` and
            ``mol2latent_model.pth`` (``.safetensors`` of the same names are preferred).
        subfolder: folder inside ``model``. For the Hub repo ``None`` or ``"pretrained"``
            means ``"pretrained_MoleculeSTM/SciBERT-Graph-3e-5-1-1e-4-1-InfoNCE-0.1-32-32"``
            (the run upstream's ``scripts/README.md`` uses for DrugBank-Description retrieval),
            ``"demo"`` means upstream's toy ``"demo/demo_checkpoints_Graph"``, and any other
            run is named by its folder. For a local ``model`` it is a relative path.
        revision: Hub revision of ``model``.
        tokenizer: tokenizer name or folder (default ``"allenai/scibert_scivocab_uncased"``),
            or a ready tokenizer object (not stored in bundles).
        text_config: ``BertConfig`` values overriding SciBERT's (tests with tiny models).
        on_invalid: ``"raise"`` (default): an input RDKit cannot read raises
            :class:`InvalidMoleculeError` naming it and its index. ``"skip"``: such inputs are
            left out of :meth:`encode_modal`'s result (fewer rows; a warning names them); use
            :meth:`encode_molecules` or :func:`embed_molecules` to get the kept indices.
        embedding_dim: expected output size (256 for the released checkpoints); checked on load.
        cache_dir: Hugging Face cache folder.
        device, dtype: where and how to load (default CUDA when available, float32).

    Inputs to :meth:`encode_modal`: SMILES strings, RDKit ``Mol`` objects, or paths to ``.mol``
    files and single-molecule ``.sdf`` files (see :mod:`textme_moleculestm.molecules`).
    """

    name = "moleculestm"
    modality = "molecule"
    embedding_dim = 256
    license = LICENSE
    input_spec = InputSpec(
        "molecule",
        "SMILES strings, RDKit Mol objects, or paths to .mol / single-molecule .sdf files; "
        "one input is one molecule, featurised as an OGB graph",
        MOLECULE_EXTENSIONS,
    )

    def __init__(self, model: str = HUB_REPO, subfolder: str | None = None,
                 revision: str | None = None, tokenizer: str | Any = None,
                 text_config: dict[str, Any] | None = None, on_invalid: OnInvalid = "raise",
                 embedding_dim: int | None = None, cache_dir: str | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__(device, dtype)
        if not isinstance(model, (str, os.PathLike)) or not os.fspath(model):
            raise InvalidInputError(f"model must be a Hub repo id or a folder, got {model!r}")
        self.model_id = absolute_path(os.fspath(model))  # bundles store it: from any folder
        self.subfolder = subfolder
        self.revision = revision
        self.tokenizer = (absolute_path(os.fspath(tokenizer))
                          if isinstance(tokenizer, (str, os.PathLike)) else tokenizer)
        self.text_config = dict(text_config) if text_config else None
        self.on_invalid: OnInvalid = check_on_invalid(on_invalid)
        self.cache_dir = cache_dir
        self.embedding_dim = embedding_dim or 256  # the released checkpoints' size
        self._dim_is_a_guess = not embedding_dim  # until loading measures it
        self._mol_tower: Any = None
        self._text_tower: Any = None
        self._tok: Any = None

    # -- loading ----------------------------------------------------------------------------
    @property
    def source(self) -> str:
        """Where the weights come from, for messages (``repo/subfolder`` or the folder)."""
        if os.path.isdir(self.model_id):
            return os.path.join(self.model_id, self.subfolder or "")
        return f"{self.model_id}/{resolve_subfolder(self.subfolder)}"

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Read the four checkpoints strictly, build both towers, load the tokenizer."""
        if self._mol_tower is None:
            self._build()
        dtype = dtype or torch.float32
        for tower in (self._mol_tower, self._text_tower):
            tower.to(device=device, dtype=dtype).eval()

    def _build(self) -> None:
        from .gin import GINConfig, MoleculeTower
        from .text import SCIBERT, SCIBERT_CONFIG, TextTower, check_tokenizer, load_tokenizer

        paths = checkpoint_paths(self.model_id, self.subfolder, self.revision, self.cache_dir)
        states = {stem: read_state_dict(path) for stem, path in paths.items()}
        try:
            gin_config = GINConfig.from_state_dicts(states["molecule_model"],
                                                    states["mol2latent_model"])
            latent = int(states["text2latent_model"]["weight"].shape[0])
        except (KeyError, IndexError, ValueError) as exc:
            raise CheckpointError(
                f"{self.source} is not a MoleculeSTM-Graph checkpoint ({type(exc).__name__}: "
                f"{exc}); expected molecule_model.pth with molecule_node_model.* keys"
            ) from exc
        if latent != gin_config.latent_dim:
            raise CheckpointError(
                f"text2latent projects to {latent} dims but mol2latent to "
                f"{gin_config.latent_dim}: the files come from different runs"
            )
        mol_tower = MoleculeTower(gin_config)
        load_strict(mol_tower.molecule_model, states["molecule_model"], paths["molecule_model"])
        load_strict(mol_tower.mol2latent, states["mol2latent_model"], paths["mol2latent_model"])
        text_tower = TextTower({**SCIBERT_CONFIG, **(self.text_config or {})}, latent)
        load_strict(text_tower.text_model, drop_stale_text_buffers(states["text_model"]),
                    paths["text_model"])
        load_strict(text_tower.text2latent, states["text2latent_model"],
                    paths["text2latent_model"])
        tokenizer = self.tokenizer
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer or SCIBERT, self.cache_dir)
        check_tokenizer(tokenizer, text_tower.text_model.config.vocab_size,
                        f"for {self.source}")
        self._mol_tower, self._text_tower, self._tok = mol_tower, text_tower, tokenizer
        self.embedding_dim, self._dim_is_a_guess = latent, False  # the base class checks it
        logger.info("moleculestm: loaded %s (GIN %d x %d, chirality table %d rows, %d-d)",
                    self.source, gin_config.num_layer, gin_config.emb_dim,
                    gin_config.chirality_rows, latent)

    @property
    def chirality_rows(self) -> int:
        """Rows of the loaded checkpoint's chirality table (4: ogb <= 1.3.5, 5: newer)."""
        self.load()
        return self._mol_tower.config.chirality_rows

    @property
    def model_dtype(self) -> torch.dtype:
        """The dtype of the loaded weights."""
        self.load()
        return next(self._mol_tower.parameters()).dtype

    # -- molecules --------------------------------------------------------------------------
    def _graph(self, item: Any, index: int | None) -> MolGraph:
        """One input as a graph featurised for the loaded checkpoint."""
        if isinstance(item, MolGraph):
            return item
        mol = to_mol(item, index)
        try:
            with quiet_rdkit():
                return mol_to_graph(mol, self._mol_tower.config.chirality_rows)
        except UnlistedChiralityError as exc:
            raise InvalidMoleculeError(index, item, str(exc)) from exc
        except RuntimeError as exc:  # RDKit invariant violations, e.g. an unsanitised Mol
            first = str(exc).strip().splitlines()
            detail = first[1].strip() if len(first) > 1 else (first[0] if first else "")
            raise InvalidMoleculeError(
                index, item, f"RDKit could not compute its atom features ({detail}); if it is "
                "an RDKit Mol read with sanitize=False, call Chem.SanitizeMol(mol) first"
            ) from exc

    def _graphs(self, inputs: Sequence[Any], start: int, skip: bool,
                kept: list[int], errors: list[InvalidMoleculeError]) -> list[MolGraph]:
        graphs = []
        for offset, item in enumerate(inputs):
            try:
                graphs.append(self._graph(item, start + offset))
            except InvalidMoleculeError as err:
                if not skip:
                    raise
                errors.append(err)
                continue
            kept.append(start + offset)
        return graphs

    def _encode(self, inputs: Any, batch_size: int, show_progress_bar: bool | None,
                skip: bool) -> tuple[torch.Tensor, list[int], int]:
        items = molecule_list(inputs, f"{self.name}.encode_modal expects")
        if not items:
            raise EmptyInputError(
                f"{self.name}.encode_modal was given no inputs; pass at least one")
        self.load()
        kept: list[int] = []
        errors: list[InvalidMoleculeError] = []
        parts = []
        for start in range(0, len(items), _CHUNK):
            graphs = self._graphs(items[start:start + _CHUNK], start, skip, kept, errors)
            if graphs:
                parts.append(super().encode_modal(graphs, batch_size, show_progress_bar))
        if errors:
            shown = ", ".join(f"{e.index} ({e.value!r:.40}: {e.reason})" for e in errors[:5])
            logger.warning("moleculestm: skipped %d invalid molecule(s) of %d: %s%s", len(errors),
                           len(items), shown, " ..." if len(errors) > 5 else "")
        out = torch.cat(parts) if parts else torch.empty(0, self.embedding_dim)
        return out, kept, len(items)

    @overrides_batching  # validates, batches and skips itself, then calls the base class
    def encode_modal(self, inputs: Sequence[Any], batch_size: int = 32,
                     show_progress_bar: bool | None = None) -> torch.Tensor:
        """Embed molecules; L2-normalised float32 ``[N, 256]`` on CPU.

        With ``on_invalid="skip"`` invalid molecules are left out (fewer rows than inputs).

        Raises:
            InvalidMoleculeError: an input RDKit cannot read (``on_invalid="raise"``); its
                ``index`` is the position in ``inputs``.
            EmptyInputError: no inputs, or (``"skip"``) none of them valid.
        """
        out, kept, count = self._encode(inputs, batch_size, show_progress_bar,
                                        skip=self.on_invalid == "skip")
        if not kept:
            raise EmptyInputError(
                f"none of the {count} inputs is a valid molecule (all skipped); "
                "see the warning above for what RDKit reported"
            )
        return out

    def encode_molecules(self, inputs: Sequence[Any], batch_size: int = 32,
                         show_progress_bar: bool | None = None) -> tuple[torch.Tensor, list[int]]:
        """Embed the valid molecules among ``inputs`` and say which they were.

        Returns:
            ``(embeddings [K, 256], kept)`` where ``kept[k]`` is the input index of row ``k``;
            ``K = 0`` (an empty tensor) when no input is valid.
        """
        out, kept, _ = self._encode(inputs, batch_size, show_progress_bar, skip=True)
        return out, kept

    def preprocess(self, inputs: list[Any]) -> GraphBatch:
        """Featurise a list of molecules (or ready :class:`MolGraph` objects) into one batch."""
        self.load()
        return collate_graphs([self._graph(item, i) for i, item in enumerate(inputs)])

    def encode_modal_batch(self, batch: GraphBatch) -> torch.Tensor:
        """GIN -> mean pooling -> ``mol2latent`` on a featurised batch."""
        return self._mol_tower(batch.to(self.device))

    # -- text -------------------------------------------------------------------------------
    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """SciBERT ``pooler_output`` -> ``text2latent``; texts truncated to 512 tokens."""
        from .text import TEXT_MAX_TOKENS

        tokens = self._tok(texts, padding=True, truncation=True, max_length=TEXT_MAX_TOKENS,
                           return_tensors="pt")
        return self._text_tower(tokens["input_ids"].to(self.device),
                                tokens["attention_mask"].to(self.device))

    # -- description ------------------------------------------------------------------------
    #: not stored by config() as given: where downloads are cached, a tokenizer object
    config_exclude = ("device", "dtype", "cache_dir", "tokenizer")

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this encoder: the constructor's, with local paths
        absolute. A tokenizer object is not stored (only a tokenizer name or folder), nor
        ``cache_dir``, nor the 256-d default of a model not loaded yet. For the Hub repo the
        folder of the run is always stored, so a bundle keeps its weights if the default
        changes."""
        cfg = {**super().config(), "model": self.model_id}
        if not os.path.isdir(self.model_id):
            cfg["subfolder"] = resolve_subfolder(self.subfolder)
        elif self.subfolder is not None:
            cfg["subfolder"] = self.subfolder
        if isinstance(self.tokenizer, str):
            cfg["tokenizer"] = self.tokenizer
        if self._dim_is_a_guess:
            cfg.pop("embedding_dim", None)
        return cfg

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(model=self.source, on_invalid=self.on_invalid)
        return out


def embed_molecules(model: Any, inputs: Sequence[Any], modality: str = "molecule",
                    **embed_kwargs: Any) -> tuple[Any, list[int]]:
    """Embed the valid molecules among ``inputs``, skipping invalid ones, with their indices.

    Args:
        model: a :class:`textme_sdk.TextME` with a MoleculeSTM modality (embeddings in the
            anchor space, as ``model.embed`` returns them) or a :class:`MoleculeSTMEncoder`
            (MoleculeSTM's own 256-d space, a tensor).
        inputs: SMILES strings, RDKit ``Mol`` objects, ``.mol`` / ``.sdf`` paths.
        modality: the modality name in ``model`` (TextME only).
        **embed_kwargs: forwarded to ``TextME.embed`` (``batch_size``, ``convert_to_tensor``...)
            or to ``encode_molecules``.

    Returns:
        ``(embeddings, kept)``: one row per valid input, ``kept[k]`` its index in ``inputs``.
        When nothing is valid: zero rows and ``[]``.
    """
    if isinstance(model, MoleculeSTMEncoder):
        return model.encode_molecules(inputs, **embed_kwargs)
    encoder = model.entry(modality).encoder
    if not isinstance(encoder, MoleculeSTMEncoder):
        raise InvalidInputError(
            f"modality {modality!r} of this model is encoded by {type(encoder).__name__}, "
            "not MoleculeSTMEncoder; pass modality= naming the molecule modality"
        )
    from .molecules import parse_molecules

    parsed = parse_molecules(inputs, on_invalid="skip")
    graphs, kept = [], []
    if parsed.mols:
        encoder.load()
    for mol, index in zip(parsed.mols, parsed.kept):
        try:  # featurising can fail too (e.g. a chirality tag a 4-row checkpoint lacks)
            graphs.append(encoder._graph(mol, index))
        except InvalidMoleculeError as err:
            logger.warning("moleculestm: skipped input %d: %s", index, err.reason)
            continue
        kept.append(index)
    if not graphs:
        import numpy as np

        empty = torch.empty(0, model.anchor.embedding_dim)
        return (empty if embed_kwargs.get("convert_to_tensor") else np.zeros(
            (0, model.anchor.embedding_dim), dtype=np.float32)), []
    return model.embed(graphs, modality=modality, **embed_kwargs), kept
