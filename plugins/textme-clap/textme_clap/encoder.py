"""The ``clap`` encoder: CLAP's audio branch (modal) and RoBERTa text branch, two backends.

* ``backend="transformers"`` (default): ``ClapModel`` from a Hub id or local folder, default
  ``laion/larger_clap_general`` (general audio, music and speech).
* ``backend="laion_clap"``: the ``laion_clap`` package's own model with an original ``.pt``
  checkpoint (a published name such as ``"630k-audioset-best.pt"``, fetched from
  ``lukewys/laion_clap``, or a file path).

The backend is inferred from ``model`` when not given: a published LAION-CLAP checkpoint name
or a ``.pt`` / ``.ckpt`` / ``.safetensors`` file means ``laion_clap``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Literal

import numpy as np
import torch

from textme_sdk import InputSpec, ModalityEncoder
from textme_sdk.encoders import absolute_path
from textme_sdk.errors import InvalidInputError

from .audio import (
    AUDIO_EXTENSIONS,
    AudioBatch,
    center_crop,
    quantize_int16,
    split_windows,
    to_waveform,
)
from .common import Backend, load_tokenizer

logger = logging.getLogger(__name__)

__all__ = ["CLAPEncoder", "DEFAULT_MODEL", "DEFAULT_BACKEND"]

DEFAULT_MODEL = "laion/larger_clap_general"
DEFAULT_BACKEND = "transformers"
DEFAULT_LAION_TOKENIZER = "roberta-base"
BackendName = Literal["transformers", "laion_clap"]
LongAudio = Literal["windows", "crop"]
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")
_MAX_CLIPS_PER_PASS = 16

_LICENSES = {
    "transformers": "Apache-2.0 (laion/* CLAP weights on the Hugging Face Hub)",
    "laion_clap": "CC0-1.0 (LAION-CLAP code); checkpoint licence: see lukewys/laion_clap",
}


def infer_backend(model: str) -> BackendName:
    """``laion_clap`` for published checkpoint names and checkpoint files, else ``transformers``."""
    from .laion import LAION_CHECKPOINTS

    if model in LAION_CHECKPOINTS or model.endswith(_CHECKPOINT_SUFFIXES):
        return "laion_clap"
    return "transformers"


def peek_embedding_dim(model: str, backend: BackendName, revision: str | None = None,
                       cache_dir: str | None = None) -> int:
    """``projection_dim`` from a ``ClapModel``'s ``config.json`` in a local folder or already
    in the Hugging Face cache (no download, no transformers import); 0 when unknown.

    Every published CLAP is 512-d; this matters for local and tiny models, whose size must be
    known before loading (e.g. for ``compute_offsets``). Loading measures the real size.
    """
    if backend != "transformers":
        return 0
    try:
        if os.path.isdir(model):
            path: str | None = os.path.join(model, "config.json")
        else:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(model, "config.json", revision=revision,
                                           cache_dir=cache_dir)
            path = found if isinstance(found, str) else None
        if not path or not os.path.isfile(path):
            return 0
        with open(path, encoding="utf-8") as f:
            return int(json.load(f).get("projection_dim", 0))
    except (OSError, ValueError, TypeError, AttributeError, ImportError):  # best effort only
        return 0


class CLAPEncoder(ModalityEncoder):
    """A CLAP model as a textme-sdk audio encoder (512-d).

    Args:
        model: a ``ClapModel`` Hub id or folder (transformers backend), or a LAION-CLAP
            checkpoint name or file (laion_clap backend). Default
            ``"laion/larger_clap_general"``.
        backend: ``"transformers"`` or ``"laion_clap"``; inferred from ``model`` when omitted.
        revision: Hub revision (commit, branch, tag) of the model or checkpoint.
        tokenizer: tokenizer name/folder or a ready tokenizer object. transformers: default
            the model repo's own; laion_clap: default ``"roberta-base"``.
        text_config: laion_clap only - RoBERTa config values overriding those read from the
            checkpoint (tests with tiny text branches).
        long_audio: for non-fusion models, clips over 10 s are covered by 10 s windows whose
            embeddings are averaged (``"windows"``) or cut to their central 10 s (``"crop"``).
            Fusion models always use the upstream fusion input.
        input_sample_rate: the rate of bare waveform arrays (otherwise pass ``(wave, rate)``).
        embedding_dim: expected output size (512 for every published CLAP); checked on load.
            Without it, a local folder's (or cached repo's) ``config.json`` gives the size
            before loading.
        cache_dir: Hugging Face cache folder.
        device, dtype: where and how to load (default CUDA when available, float32).

    Inputs to :meth:`encode_modal`: file paths (WAV, FLAC, MP3, OGG...), ``(waveform,
    sample_rate)`` tuples of numpy arrays or tensors (mono, or channels x samples), or
    ``{"array", "sampling_rate"}`` dicts; down-mixed to mono and resampled to 48 kHz.
    """

    name = "clap"
    modality = "audio"
    embedding_dim = 512
    license = _LICENSES["transformers"]
    input_spec = InputSpec(
        "audio",
        "file paths (wav/flac/mp3/ogg), (waveform, sample_rate) tuples of numpy arrays or "
        "tensors, or {'array', 'sampling_rate'} dicts; mono 48 kHz after resampling",
        AUDIO_EXTENSIONS,
    )

    def __init__(self, model: str = DEFAULT_MODEL, backend: BackendName | None = None,
                 revision: str | None = None, tokenizer: str | Any | None = None,
                 text_config: dict[str, Any] | None = None, long_audio: LongAudio = "windows",
                 input_sample_rate: int | None = None, embedding_dim: int | None = None,
                 cache_dir: str | None = None, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None):
        super().__init__(device, dtype)
        self.model_id = absolute_path(os.fspath(model))  # bundles store it: from any folder
        self.backend_name: BackendName = backend or infer_backend(self.model_id)
        if self.backend_name not in _LICENSES:
            raise InvalidInputError(
                f"backend must be 'transformers' or 'laion_clap', got {backend!r}"
            )
        if long_audio not in ("windows", "crop"):
            raise InvalidInputError(f"long_audio must be 'windows' or 'crop', got {long_audio!r}")
        if text_config is not None and self.backend_name != "laion_clap":
            raise InvalidInputError("text_config applies to the laion_clap backend only")
        self.revision = revision
        self.tokenizer = absolute_path(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.text_config = text_config
        self.long_audio = long_audio
        self.input_sample_rate = input_sample_rate
        self.cache_dir = cache_dir
        known = embedding_dim or peek_embedding_dim(self.model_id, self.backend_name, revision,
                                                    cache_dir)
        self._dim_is_a_guess = not known  # every published CLAP is 512-d; loading measures it
        self.embedding_dim = known or 512
        self.license = _LICENSES[self.backend_name]
        self._backend: Backend | None = None

    # -- loading ----------------------------------------------------------------------------
    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        """Load the backend on ``device`` (or move it there)."""
        if self._backend is None:
            if dtype not in (None, torch.float32) and self.backend_name == "laion_clap":
                raise InvalidInputError(
                    "the laion_clap backend runs in float32 (its STFT layers expect it); "
                    "leave dtype unset"
                )
            self._backend = self._build_backend(device)
            if dtype is not None:
                self._backend.model.to(dtype)
            self.embedding_dim = self._backend.embedding_dim  # the base class checks it
            self._dim_is_a_guess = False
        else:
            self._backend.to(device)

    def _build_backend(self, device: torch.device) -> Backend:
        if self.backend_name == "transformers":
            from .hf import build_hf_backend

            return build_hf_backend(self.model_id, self.tokenizer, self.revision,
                                    self.cache_dir, device)
        return self._build_laion(device)

    def _build_laion(self, device: torch.device) -> Backend:
        from . import laion

        path = laion.resolve_checkpoint(self.model_id, self.revision, self.cache_dir)
        state = laion.read_checkpoint(path)
        arch, fusion = laion.infer_architecture(state)
        text_config = {**laion.text_config_from(state), **(self.text_config or {})}
        model = laion.build_laion_model(arch, fusion, text_config=text_config, init_weights=False)
        laion.load_weights(model, state)
        tokenizer = self.tokenizer
        if tokenizer is None or isinstance(tokenizer, str):
            tokenizer = load_tokenizer(tokenizer or DEFAULT_LAION_TOKENIZER, None, self.cache_dir)
        logger.info("clap: loaded %s (%s%s) from %s", self.model_id, arch,
                    ", fusion" if fusion else "", path)
        return laion.LaionBackend(model, tokenizer, device)

    @property
    def backend(self) -> Backend:
        """The loaded backend (loads on first access)."""
        if self._backend is None:
            self.load()
        assert self._backend is not None
        return self._backend

    @property
    def fusion(self) -> bool:
        """Whether the loaded model takes the 4-channel fusion input."""
        return self.backend.fusion

    # -- the encoder contract ---------------------------------------------------------------
    def preprocess(self, inputs: list[Any]) -> AudioBatch:
        """Decode, down-mix, resample and fit each input to the model's 10 s window."""
        backend = self.backend
        batch = AudioBatch(clips=[], owner=[], n_inputs=len(inputs))
        for index, item in enumerate(inputs):
            wave = to_waveform(item, self.input_sample_rate)
            if backend.quantize:
                wave = quantize_int16(wave)
            batch.durations.append(len(wave) / backend.mel.sample_rate)
            for clip in self._fit(wave, backend):
                batch.clips.append(clip)
                batch.owner.append(index)
        return batch

    def _fit(self, wave: np.ndarray, backend: Backend) -> list[np.ndarray]:
        if backend.fusion:
            return [wave]  # fusion features are built from the whole clip
        window = backend.mel.max_samples
        if self.long_audio == "crop":
            return [center_crop(wave, window)]
        return split_windows(wave, window)

    def encode_modal_batch(self, batch: AudioBatch) -> torch.Tensor:
        """Embed every clip (in passes of 16) and average the clips of each input."""
        parts = [
            self.backend.embed_audio(batch.clips[i:i + _MAX_CLIPS_PER_PASS]).float().cpu()
            for i in range(0, len(batch.clips), _MAX_CLIPS_PER_PASS)
        ]
        clips = torch.cat(parts)
        out = torch.zeros(batch.n_inputs, clips.shape[1])
        return out.index_add_(0, torch.tensor(batch.owner), clips)

    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Text branch on one batch (RoBERTa, at most 77 tokens, as LAION-CLAP trained)."""
        return self.backend.embed_text(texts)

    #: not stored by config() as given: where downloads are cached, a tokenizer object
    config_exclude = ("device", "dtype", "cache_dir", "tokenizer")

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this encoder: the constructor's, with the backend as
        inferred and local files and folders as absolute paths (so ``TextME.from_pretrained``
        rebuilds the same model on this machine from any working directory).

        An injected tokenizer object is not stored (only a tokenizer given by name or folder),
        nor ``cache_dir``, nor a dimension that is only the 512-d guess of an unloaded model.
        """
        cfg = {**super().config(), "model": self.model_id, "backend": self.backend_name}
        if isinstance(self.tokenizer, str):
            cfg["tokenizer"] = self.tokenizer
        if self._dim_is_a_guess:
            cfg.pop("embedding_dim", None)
        return cfg

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(backend=self.backend_name, model=self.model_id)
        return out
