"""The ``laion_clap`` backend: LAION-CLAP's own ``CLAP`` model (HTSAT audio + RoBERTa text)
with the original checkpoints (``630k-audioset-best.pt``,
``music_speech_audioset_epoch_15_esc_89.98.pt``, ...).

Three upstream traps are avoided here:

* ``import laion_clap`` runs ``laion_clap.training.data``, which calls
  ``{Bert,Roberta,Bart}Tokenizer.from_pretrained`` at import time (minutes of network retries
  without ``HF_HUB_OFFLINE=1``). Only the model package ``clap_module`` is imported, the
  way ``laion_clap/__init__.py`` itself makes it importable.
* ``CLAP.__init__`` downloads ``roberta-base`` weights although the checkpoint holds the
  text branch; the branch is built from roberta-base's config (written out below) instead.
* ``CLAP_Module.get_text_embedding`` is broken for ``tmodel='transformer'``; only RoBERTa
  checkpoints (all the published ones) are supported, and text goes through
  ``CLAP.get_text_embedding`` directly.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import numpy as np
import torch

from .audio import MelParams, fusion_features
from .common import TEXT_MAX_TOKENS, CheckpointError, CLAPLoadError, check_tokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "LAION_REPO", "LAION_CHECKPOINTS", "ROBERTA_BASE", "LaionBackend", "import_clap_module",
    "build_laion_model", "read_checkpoint", "infer_architecture", "load_weights",
    "resolve_checkpoint",
]

#: Where ``CLAP_Module.load_ckpt`` downloads the published checkpoints from.
LAION_REPO = "lukewys/laion_clap"
#: Published checkpoints and their audio architecture (all use the RoBERTa text branch).
LAION_CHECKPOINTS: dict[str, str] = {
    "630k-best.pt": "HTSAT-tiny",
    "630k-audioset-best.pt": "HTSAT-tiny",
    "630k-fusion-best.pt": "HTSAT-tiny (fusion)",
    "630k-audioset-fusion-best.pt": "HTSAT-tiny (fusion)",
    "music_audioset_epoch_15_esc_90.14.pt": "HTSAT-base",
    "music_speech_epoch_15_esc_89.25.pt": "HTSAT-base",
    "music_speech_audioset_epoch_15_esc_89.98.pt": "HTSAT-base",
}
#: ``config.json`` of ``roberta-base``, the text branch of every published LAION-CLAP checkpoint.
ROBERTA_BASE: dict[str, Any] = {
    "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 514, "type_vocab_size": 1,
    "initializer_range": 0.02, "layer_norm_eps": 1e-5, "pad_token_id": 1, "bos_token_id": 0,
    "eos_token_id": 2,
}
_HTSAT_SIZES = {96: "HTSAT-tiny", 128: "HTSAT-base", 256: "HTSAT-large"}
_POSITION_IDS = "text_branch.embeddings.position_ids"


def import_clap_module() -> ModuleType:
    """Import LAION-CLAP's model package without running ``laion_clap/__init__.py``."""
    if "clap_module" in sys.modules:
        return sys.modules["clap_module"]
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise CLAPLoadError(
            "the laion_clap backend needs the laion-clap package: pip install laion-clap"
        )
    # laion_clap/__init__.py appends its own folder to sys.path for exactly this import.
    package_dir = str(spec.submodule_search_locations[0])
    if package_dir not in sys.path:
        sys.path.append(package_dir)
    return importlib.import_module("clap_module")


def _audio_config(arch: str) -> dict[str, Any]:
    clap_module = import_clap_module()
    path = Path(clap_module.__file__).parent / "model_configs" / f"{arch}.json"
    if not path.is_file():
        raise CLAPLoadError(f"laion_clap has no model config {arch!r} (looked for {path})")
    return json.loads(path.read_text())


@contextmanager
def _prebuilt_text_branch(text_model: torch.nn.Module) -> Iterator[None]:
    """Make ``CLAP.__init__``'s ``RobertaModel.from_pretrained('roberta-base')`` return ours."""

    class _Prebuilt:
        @staticmethod
        def from_pretrained(*_args: Any, **_kwargs: Any) -> torch.nn.Module:
            return text_model

    model_module = importlib.import_module("clap_module.model")
    with mock.patch.object(model_module, "RobertaModel", _Prebuilt):
        yield


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
                   "xavier_uniform_", "xavier_normal_", "constant_", "zeros_", "ones_")


@contextmanager
def _skipped_init() -> Iterator[None]:
    """Skip random initialisation (every tensor is overwritten by a strict load right after).

    Patches ``torch.nn.init`` and HTSAT's own ``trunc_normal_``, as transformers'
    ``no_init_weights`` does for ``from_pretrained``; buffers computed in ``__init__`` (STFT
    kernels, mel matrix, attention masks) are unaffected. Cuts a build from ~2.5 s to ~0.4 s.
    """

    def keep(tensor: torch.Tensor, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        return tensor

    htsat = importlib.import_module("clap_module.htsat")
    with ExitStack() as stack:
        for name in _INIT_FUNCTIONS:
            stack.enter_context(mock.patch.object(torch.nn.init, name, keep))
        stack.enter_context(mock.patch.object(htsat, "trunc_normal_", keep))
        yield


def build_laion_model(arch: str = "HTSAT-tiny", fusion: bool = False,
                      text_model: torch.nn.Module | None = None,
                      text_config: dict[str, Any] | None = None,
                      init_weights: bool = True) -> torch.nn.Module:
    """Build LAION-CLAP's ``CLAP`` (random weights) exactly as ``CLAP_Module`` would.

    Args:
        arch: ``"HTSAT-tiny"``, ``"HTSAT-base"`` or ``"HTSAT-large"`` (laion_clap configs).
        fusion: the feature-fusion variant (``fusion_type='aff_2d'``, as ``CLAP_Module``).
        text_model: a ready RoBERTa text branch (e.g. built on the meta device).
        text_config: RoBERTa config values when ``text_model`` is not given (default:
            :data:`ROBERTA_BASE`); its ``hidden_size`` must be 768 (CLAP's projection).
        init_weights: ``False`` leaves parameters uninitialised, for a checkpoint to fill.
    """
    clap_module = import_clap_module()
    cfg = _audio_config(arch)
    cfg["text_cfg"]["model_type"] = "roberta"
    cfg["enable_fusion"] = fusion
    cfg["fusion_type"] = "aff_2d" if fusion else "None"
    with ExitStack() as stack:
        if not init_weights:
            stack.enter_context(_skipped_init())
        if text_model is None:
            from transformers import RobertaConfig, RobertaModel

            text_model = RobertaModel(RobertaConfig(**(text_config or ROBERTA_BASE)))
        with _prebuilt_text_branch(text_model):
            model = clap_module.model.CLAP(**cfg)
    model.model_cfg = cfg
    return model.eval()


# -- checkpoints ---------------------------------------------------------------------------
def resolve_checkpoint(name: str, revision: str | None = None,
                       cache_dir: str | None = None) -> str:
    """A local file path as is; a published checkpoint name from the Hub (cached)."""
    if os.path.isfile(name):
        return name
    if name not in LAION_CHECKPOINTS:
        raise CheckpointError(
            f"checkpoint {name!r} is neither a file nor a published LAION-CLAP checkpoint "
            f"({', '.join(LAION_CHECKPOINTS)})"
        )
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(LAION_REPO, name, revision=revision, cache_dir=cache_dir)
    except Exception as exc:  # offline, gated, network...
        raise CheckpointError(
            f"could not fetch {name!r} from {LAION_REPO} ({type(exc).__name__}: {exc}). When "
            "offline it must already be in the Hugging Face cache, or pass the .pt file's path"
        ) from exc


def _numpy_safe_globals() -> list[Any]:
    """numpy scalar/dtype reconstructors: harmless, and some training checkpoints pickle them."""
    found: list[Any] = [np.dtype]
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2 / numpy 1
        try:
            found.append(importlib.import_module(name).scalar)
        except (ImportError, AttributeError):
            continue
    found += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [g for g in found if g is not None]


def read_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """Read a LAION-CLAP checkpoint without executing pickled code.

    Handles ``.safetensors``, ``{"state_dict": ...}`` wrappers and the ``module.`` prefix that
    the published ``.pt`` files carry (they were saved from DistributedDataParallel).
    """
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            raw: Any = load_file(path)
        else:
            with torch.serialization.safe_globals(_numpy_safe_globals()):
                raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"could not read checkpoint {path!r} safely ({type(exc).__name__}: {exc}). If you "
            "trust the file, convert it once: sd = torch.load(path, weights_only=False)"
            "['state_dict']; safetensors.torch.save_file(sd, 'clap.safetensors')"
        ) from exc
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path!r} holds no state dict")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def infer_architecture(state: dict[str, torch.Tensor]) -> tuple[str, bool]:
    """``(laion_clap audio config name, fusion?)`` read from a checkpoint's tensors."""
    patch = state.get("audio_branch.patch_embed.proj.weight")
    if patch is None or int(patch.shape[0]) not in _HTSAT_SIZES:
        raise CheckpointError(
            "not an HTSAT LAION-CLAP checkpoint (no audio_branch.patch_embed.proj.weight of "
            "width 96/128/256); PANN-based checkpoints are not supported"
        )
    if "text_branch.embeddings.word_embeddings.weight" not in state:
        raise CheckpointError(
            "the checkpoint's text branch is not RoBERTa; only RoBERTa LAION-CLAP checkpoints "
            "(all the published ones) are supported"
        )
    fusion = any(k.startswith("audio_branch.patch_embed.fusion_model.") for k in state)
    return _HTSAT_SIZES[int(patch.shape[0])], fusion


def text_config_from(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """roberta-base's config with the sizes the checkpoint's tensors show (vocabulary,
    positions, layers, feed-forward width); the head count cannot be read and stays 12."""
    cfg = dict(ROBERTA_BASE)
    cfg["vocab_size"] = int(state["text_branch.embeddings.word_embeddings.weight"].shape[0])
    pos = state.get("text_branch.embeddings.position_embeddings.weight")
    if pos is not None:
        cfg["max_position_embeddings"] = int(pos.shape[0])
    layers = {k.split(".")[3] for k in state if k.startswith("text_branch.encoder.layer.")}
    cfg["num_hidden_layers"] = len(layers)
    ffn = state.get("text_branch.encoder.layer.0.intermediate.dense.weight")
    if ffn is not None:
        cfg["intermediate_size"] = int(ffn.shape[0])
    return cfg


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Strictly load a (prefix-stripped) checkpoint; only the stale position-ids buffer may go.

    Upstream's ``load_state_dict`` deletes ``text_branch.embeddings.position_ids`` for
    transformers >= 4.31, where it is no longer a saved buffer.
    """
    expected = model.state_dict()
    state = dict(state)
    if _POSITION_IDS in state and _POSITION_IDS not in expected:
        del state[_POSITION_IDS]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            "checkpoint does not match the LAION-CLAP architecture: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), wrong shapes {wrong[:5]} "
            f"({len(wrong)})"
        )
    model.load_state_dict(state, strict=True)


# -- the backend ---------------------------------------------------------------------------
class LaionBackend:
    """A loaded LAION-CLAP model with its RoBERTa tokenizer."""

    quantize = True  # CLAP_Module round-trips waveforms through int16 before embedding

    def __init__(self, model: torch.nn.Module, tokenizer: Any, device: torch.device):
        self.model = model.to(device).eval()
        self.device = device
        audio = model.model_cfg["audio_cfg"]
        self.fusion = bool(model.enable_fusion)
        self.mel = MelParams(
            sample_rate=audio["sample_rate"], n_fft=audio["window_size"],
            hop_length=audio["hop_size"], n_mels=audio["mel_bins"], f_min=audio["fmin"],
            f_max=audio["fmax"], max_samples=audio["clip_samples"],
        )
        self.embedding_dim = int(model.joint_embed_shape)
        vocab_rows = model.text_branch.config.vocab_size
        check_tokenizer(tokenizer, vocab_rows, "the laion_clap text branch")
        self.tokenizer = tokenizer

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        self.device = device

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """``CLAP.get_text_embedding`` on RoBERTa tokens padded to 77, as ``CLAP_Module``."""
        tokens = self.tokenizer(texts, padding="max_length", truncation=True,
                                max_length=TEXT_MAX_TOKENS, return_tensors="pt")
        batch = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
        return self.model.get_text_embedding(batch)

    def embed_audio(self, clips: list[np.ndarray]) -> torch.Tensor:
        """``CLAP.get_audio_embedding`` on the inputs ``get_audio_features`` would build."""
        return self.model.get_audio_embedding([self._features(c) for c in clips])

    def _features(self, clip: np.ndarray) -> dict[str, torch.Tensor]:
        if not self.fusion:
            return {"waveform": torch.from_numpy(clip), "longer": torch.tensor([False])}
        mel, longer = fusion_features(clip, self.mel)
        return {"mel_fusion": mel, "longer": torch.tensor([longer])}
