"""The ``transformers`` backend: ``ClapModel`` from a Hub id or a local folder
(``laion/larger_clap_general``, ``laion/larger_clap_music_and_speech``,
``laion/clap-htsat-unfused``...).

Weights are loaded strictly: ``from_pretrained`` would initialise missing parameters at random
and only log it; here a missing or mismatched parameter is an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .audio import MelParams, fusion_features
from .common import TEXT_MAX_TOKENS, CheckpointError, CLAPLoadError, check_tokenizer, load_tokenizer

__all__ = ["HFBackend", "load_hf_model", "load_feature_extractor"]


def _hub_error(what: str, model_id: str, exc: Exception) -> CLAPLoadError:
    return CLAPLoadError(
        f"could not load the {what} of {model_id!r} ({type(exc).__name__}: {exc}). When "
        "offline it must already be in the Hugging Face cache (download it once with network "
        "access), or pass a local folder saved with save_pretrained"
    )


def load_hf_model(model_id: str, revision: str | None = None,
                  cache_dir: str | None = None) -> torch.nn.Module:
    """``ClapModel.from_pretrained`` that refuses missing, unexpected or mismatched weights."""
    from transformers import ClapModel

    try:
        model, info = ClapModel.from_pretrained(
            model_id, revision=revision, cache_dir=cache_dir, output_loading_info=True
        )
    except (OSError, ValueError) as exc:
        raise _hub_error("ClapModel weights", model_id, exc) from exc
    params = {name for name, _ in model.named_parameters()}
    missing = sorted(set(info.get("missing_keys", ())) & params)  # buffers are rebuilt
    stale = ("position_ids",)  # buffers older transformers saved
    unexpected = sorted(k for k in info.get("unexpected_keys", ()) if not k.endswith(stale))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys", ()))
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"{model_id!r} does not match ClapModel: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)}), mismatched {mismatched[:5]}"
        )
    return model.eval()


def load_feature_extractor(model_id: str, revision: str | None = None,
                           cache_dir: str | None = None) -> Any:
    """The repo's ``ClapFeatureExtractor`` (mel settings, 10 s window)."""
    from transformers import ClapFeatureExtractor

    try:
        return ClapFeatureExtractor.from_pretrained(
            model_id, revision=revision, cache_dir=cache_dir
        )
    except (OSError, ValueError) as exc:
        raise _hub_error("feature extractor", model_id, exc) from exc


class HFBackend:
    """A loaded transformers ``ClapModel`` with its tokenizer and feature extractor."""

    quantize = False  # ClapProcessor feeds the float waveform as is

    def __init__(self, model: torch.nn.Module, tokenizer: Any, feature_extractor: Any,
                 device: torch.device):
        self.model = model.to(device).eval()
        self.device = device
        self.fusion = bool(model.config.audio_config.enable_fusion)
        self.embedding_dim = int(model.config.projection_dim)
        fe = feature_extractor
        self.mel = MelParams(
            sample_rate=fe.sampling_rate, n_fft=fe.fft_window_size, hop_length=fe.hop_length,
            n_mels=fe.feature_size, f_min=fe.frequency_min, f_max=fe.frequency_max,
            max_samples=fe.nb_max_samples,
        )
        self.feature_extractor = fe
        check_tokenizer(tokenizer, model.config.text_config.vocab_size, "the ClapModel text model")
        self.tokenizer = tokenizer

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        self.device = device

    @staticmethod
    def _pooled(out: Any) -> torch.Tensor:
        """transformers 5 returns a model output (projection in ``pooler_output``), 4 a tensor."""
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True,
                                max_length=TEXT_MAX_TOKENS, return_tensors="pt")
        out = self.model.get_text_features(
            input_ids=tokens["input_ids"].to(self.device),
            attention_mask=tokens["attention_mask"].to(self.device),
        )
        return self._pooled(out)

    def embed_audio(self, clips: list[np.ndarray]) -> torch.Tensor:
        features, longer = self._features(clips)
        dtype = next(self.model.parameters()).dtype
        out = self.model.get_audio_features(
            input_features=features.to(self.device, dtype), is_longer=longer.to(self.device)
        )
        return self._pooled(out)

    def _features(self, clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fusion:
            # Our own fusion input: the feature extractor picks chunks at random and marks a
            # random clip "longer" when none is, which makes embeddings batch-dependent.
            pairs = [fusion_features(c, self.mel) for c in clips]
            mels = torch.stack([m for m, _ in pairs])
            longer = torch.tensor([[flag] for _, flag in pairs])
            return mels, longer
        # Clips arrive exactly window-long, so "rand_trunc" never crops anything.
        out = self.feature_extractor(
            [c.astype(np.float64) for c in clips], sampling_rate=self.mel.sample_rate,
            truncation="rand_trunc", padding="repeatpad", return_tensors="pt",
        )
        return out["input_features"].float(), torch.zeros(len(clips), 1, dtype=torch.bool)


def build_hf_backend(model_id: str, tokenizer: Any, revision: str | None,
                     cache_dir: str | None, device: torch.device) -> HFBackend:
    """Load model, feature extractor and (unless given) tokenizer from one repo or folder."""
    model = load_hf_model(model_id, revision, cache_dir)
    fe = load_feature_extractor(model_id, revision, cache_dir)
    if tokenizer is None or isinstance(tokenizer, str):
        tokenizer = load_tokenizer(tokenizer or model_id, revision if tokenizer is None else None,
                                   cache_dir)
    return HFBackend(model, tokenizer, fe, device)
