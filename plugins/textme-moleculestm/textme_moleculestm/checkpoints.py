"""Finding and reading MoleculeSTM checkpoints, strictly and without unpickling code.

Upstream (``scripts/pretrain.py``, ``save_model``) writes four plain state dicts with
``torch.save``; the downstream scripts and demos load them from one folder
(``--input_model_dir``):

========================  ==========================================  =====================
file                      module                                      keys
========================  ==========================================  =====================
``text_model.pth``        SciBERT ``BertModel`` (with pooler)         ``embeddings.*``,
                                                                      ``encoder.layer.*``,
                                                                      ``pooler.dense.*``
``text2latent_model.pth`` ``nn.Linear(768, 256)``                     ``weight``, ``bias``
``molecule_model.pth``    ``GNN_graphpred`` (GIN, mean pooling)       ``molecule_node_model.*``,
                                                                      ``graph_pred_linear.*``
``mol2latent_model.pth``  ``nn.Linear(300, 256)``                     ``weight``, ``bias``
========================  ==========================================  =====================

The Hub repo ``chao1224/MoleculeSTM`` holds such folders: the pretrained runs under
``pretrained_MoleculeSTM/<run name>`` (and ``pretrained_MoleculeSTM_Raw/<run name>``), which
upstream's ``scripts/README.md`` lists per experiment of the paper, and two toy checkpoints under
``demo/`` for the demo notebooks (``demos/README.md``). The default here is
``pretrained_MoleculeSTM/SciBERT-Graph-3e-5-1-1e-4-1-InfoNCE-0.1-32-32``, the Graph run that
upstream uses for DrugBank-Description retrieval and for property prediction;
``subfolder="demo"`` names ``demo/demo_checkpoints_Graph`` (see :data:`NAMED_SUBFOLDERS`).
``text_model.pth`` comes from a transformers 4.x ``BertModel``; releases before 4.31 also
saved the ``embeddings.position_ids`` buffer (and some the ``token_type_ids`` one). Such
buffers are checked (``0..n-1`` and zeros) and dropped; every other key must match exactly.
Files are read with ``torch.load(weights_only=True)``; ``.safetensors`` files of the same
names are preferred in local folders.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import torch

from textme_sdk import errors
from textme_sdk.checkpoints import load_strict as core_load_strict

__all__ = [
    "CHECKPOINT_STEMS",
    "DEFAULT_SUBFOLDER",
    "DEMO_SUBFOLDER",
    "HUB_REPO",
    "NAMED_SUBFOLDERS",
    "CheckpointError",
    "MoleculeSTMLoadError",
    "checkpoint_paths",
    "drop_stale_text_buffers",
    "load_strict",
    "read_state_dict",
    "resolve_subfolder",
]

#: The Hub repo with MoleculeSTM's released checkpoints.
HUB_REPO = "chao1224/MoleculeSTM"
#: The MoleculeSTM-Graph run used by default: pretrained on PubChemSTM, the checkpoint upstream's
#: ``scripts/README.md`` names for DrugBank-Description retrieval (Figure 2, Table 8) and for
#: molecular property prediction (Table 1).
DEFAULT_SUBFOLDER = "pretrained_MoleculeSTM/SciBERT-Graph-3e-5-1-1e-4-1-InfoNCE-0.1-32-32"
#: The toy MoleculeSTM-Graph checkpoints of upstream's demo notebooks (``demos/README.md``).
DEMO_SUBFOLDER = "demo/demo_checkpoints_Graph"
#: Short names accepted as ``subfolder=`` for the Hub repo: ``"pretrained"`` (the default) and
#: ``"demo"`` (the toy checkpoints). Other runs are named by their folder, e.g.
#: ``"pretrained_MoleculeSTM/SciBERT-Graph-1e-5-1-1e-4-1-InfoNCE-0.1-32-32"`` (DrugBank-ATC).
NAMED_SUBFOLDERS: dict[str, str] = {"pretrained": DEFAULT_SUBFOLDER, "demo": DEMO_SUBFOLDER}
#: The four files of a MoleculeSTM-Graph checkpoint folder (without suffix).
CHECKPOINT_STEMS: tuple[str, ...] = (
    "text_model", "text2latent_model", "molecule_model", "mol2latent_model",
)
_SUFFIXES = (".safetensors", ".pth")
#: Buffers older transformers releases stored in ``BertModel.state_dict()``.
_STALE_TEXT_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


class MoleculeSTMLoadError(errors.EncoderLoadError):
    """MoleculeSTM weights or its tokenizer could not be loaded."""


class CheckpointError(MoleculeSTMLoadError, errors.CheckpointError):
    """A checkpoint file is missing, unreadable, or does not match the architecture."""


def _is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def resolve_subfolder(subfolder: str | None) -> str:
    """The folder of the Hub repo a ``subfolder`` argument names.

    ``None`` is :data:`DEFAULT_SUBFOLDER`; the short names of :data:`NAMED_SUBFOLDERS`
    (``"pretrained"``, ``"demo"``) are expanded; anything else is a folder path, returned as is.
    """
    if subfolder is None:
        return DEFAULT_SUBFOLDER
    return NAMED_SUBFOLDERS.get(subfolder, subfolder)


def checkpoint_paths(model: str, subfolder: str | None = None, revision: str | None = None,
                     cache_dir: str | None = None) -> dict[str, str]:
    """Local paths of the four checkpoint files (downloading them from the Hub if needed).

    Args:
        model: a local folder or a Hub repo id (default repo: ``chao1224/MoleculeSTM``).
        subfolder: folder inside ``model``. For a Hub repo ``None`` means
            :data:`DEFAULT_SUBFOLDER` and the names ``"pretrained"`` / ``"demo"`` are expanded
            (:func:`resolve_subfolder`); for a local folder it is a relative path taken
            literally, and ``None`` means the folder itself.
        revision: Hub revision (commit, branch or tag).
        cache_dir: Hugging Face cache folder.

    Returns:
        ``{stem: path}`` for each of :data:`CHECKPOINT_STEMS`.

    Raises:
        CheckpointError: a file is missing from a local folder.
        MoleculeSTMLoadError: ``model`` is neither a folder nor a Hub id, or a download failed
            (e.g. offline without the files in the cache).
    """
    if os.path.isdir(model):
        folder = os.path.join(model, subfolder) if subfolder else model
        found: dict[str, str] = {}
        for stem in CHECKPOINT_STEMS:
            for suffix in _SUFFIXES:
                path = os.path.join(folder, stem + suffix)
                if os.path.isfile(path):
                    found[stem] = path
                    break
        missing = [s + ".pth" for s in CHECKPOINT_STEMS if s not in found]
        if missing:
            have = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
            raise CheckpointError(
                f"{folder!r} lacks {', '.join(missing)} (it has: "
                f"{', '.join(have[:12]) or 'nothing'}). A MoleculeSTM-Graph folder holds "
                "text_model.pth, text2latent_model.pth, molecule_model.pth and "
                "mol2latent_model.pth (upstream --input_model_dir); "
                "pass subfolder= if they sit deeper"
            )
        return found
    if not _is_hub_id(model):
        raise MoleculeSTMLoadError(
            f"{model!r} is neither an existing folder nor a Hub repo id ('org/name'); pass the "
            f"folder holding the four .pth files, or {HUB_REPO!r}"
        )
    from huggingface_hub import hf_hub_download

    folder = resolve_subfolder(subfolder)
    paths: dict[str, str] = {}
    for stem in CHECKPOINT_STEMS:
        try:
            paths[stem] = hf_hub_download(model, f"{stem}.pth", subfolder=folder or None,
                                          revision=revision, cache_dir=cache_dir)
        except Exception as exc:  # network, missing file, gated repo: all end the same way
            raise MoleculeSTMLoadError(
                f"could not fetch {folder}/{stem}.pth from the Hub repo {model!r}: "
                f"{type(exc).__name__}: {exc}. When offline the files must already be in the "
                "Hugging Face cache; or download the folder once and pass its path as model="
            ) from exc
    return paths


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A plain ``{name: tensor}`` state dict from ``.safetensors`` or a ``torch.save`` file.

    ``torch.save`` files are read with ``weights_only=True``: no code in the file runs.

    Raises:
        CheckpointError: unreadable, not a state dict, or holding objects other than tensors.
    """
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state: Any = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"could not read {path!r} as plain weights ({_reason(exc)}). MoleculeSTM "
            "checkpoints are torch.save'd state dicts of tensors; files that need arbitrary "
            "unpickling are refused (they could run code)"
        ) from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{path!r} holds a {type(state).__name__}, not a state dict of tensors"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path!r} is not a plain state dict: entries such as {bad[0]!r} are not tensors"
        )
    return dict(state)


def _reason(exc: Exception) -> str:
    """The informative line of a loading error (torch's weights-only message is a page long)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    for line in lines:
        if "Unsupported global" in line or "WeightsUnpickler error" in line:
            return line.split("Please use")[0].strip()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def drop_stale_text_buffers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the position/token-type id buffers old transformers releases saved with
    ``BertModel.state_dict()``, after checking they hold the constants they always held.

    Raises:
        CheckpointError: such a buffer holds something else.
    """
    out = dict(state)
    for key in _STALE_TEXT_BUFFERS:
        if key not in out:
            continue
        value = out.pop(key)
        length = value.shape[-1]
        expected = (torch.arange(length).expand(1, -1) if key.endswith("position_ids")
                    else torch.zeros(1, length, dtype=torch.long))
        if value.ndim != 2 or not torch.equal(value.long().cpu(), expected):
            raise CheckpointError(
                f"text_model buffer {key!r} should hold {'0..n-1' if 'position' in key else 0}; "
                "this is not a BertModel state dict as MoleculeSTM saves it"
            )
    return out


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with an error naming every difference.

    Raises:
        CheckpointError: missing or unexpected keys, or shapes that differ.
    """
    core_load_strict(module, state, f"{what} (MoleculeSTM)", error=CheckpointError,
                     hint="Check that it is a MoleculeSTM-Graph checkpoint (text_config= must "
                          "describe its text model)")
