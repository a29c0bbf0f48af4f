"""Audio inputs for CLAP: decode, down-mix, resample to 48 kHz, and fit the 10 s window.

Everything here is numpy/torch/soundfile/soxr: no torchaudio (it does not load next to the
torch builds this project targets) and no librosa import.

Length handling follows the upstream code (``laion_clap.training.data.get_audio_features``
and transformers' ``ClapFeatureExtractor``):

* shorter than the window: **repeat-pad** (tile the clip, then zero-pad the remainder);
* longer, fusion models: the **fusion** input - the whole clip's log-mel shrunk to the window
  plus three window-long chunks from its front, middle and back thirds. Upstream picks each
  chunk at random; here each is the middle of its third, so outputs are deterministic. The
  shrink is bilinear **without antialiasing**, as transformers' ``ClapFeatureExtractor`` and
  LAION-CLAP's training code (torchvision ``Resize`` on a tensor, before torchvision 0.17) do;
  the ``laion_clap`` package run with torchvision >= 0.17 antialiases instead (see
  :func:`fusion_features`);
* longer, non-fusion models: upstream takes one random 10 s crop. Here the whole clip is
  covered by 10 s windows whose embeddings are averaged (``long_audio="windows"``, default)
  or the central 10 s are used (``long_audio="crop"``), so nothing is dropped at random.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from math import gcd
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from textme_sdk.encoders import check_input_file
from textme_sdk.errors import InvalidInputError

__all__ = [
    "SAMPLE_RATE", "MAX_ARRAY_CHANNELS", "MIN_SAMPLE_RATE", "AUDIO_EXTENSIONS", "MelParams",
    "AudioBatch", "to_waveform", "read_audio", "resample", "quantize_int16", "repeat_pad",
    "split_windows", "center_crop", "log_mel", "mel_filterbank_htk", "fusion_features",
]

SAMPLE_RATE = 48_000
#: Array inputs with more channels than this are refused: far more likely a batch of clips
#: (``[batch, samples]``) or a spectrogram than one multi-channel recording.
MAX_ARRAY_CHANNELS = 8
#: Lower bound on sample rates; telephone audio is 8 kHz. Catches rates given in kHz.
MIN_SAMPLE_RATE = 1_000
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif")


@dataclass(frozen=True)
class MelParams:
    """Log-mel settings of a CLAP model (LAION-CLAP's HTSAT ``audio_cfg``)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 480
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 14_000.0
    max_samples: int = 480_000  # the 10 s window


@dataclass
class AudioBatch:
    """Preprocessed audio: model-ready clips and the input each clip belongs to.

    Non-fusion models get one or more window-long clips per input (their embeddings are
    averaged); fusion models get one clip per input (any length).
    """

    clips: list[np.ndarray]
    owner: list[int]
    n_inputs: int
    durations: list[float] = field(default_factory=list)


# -- decoding ------------------------------------------------------------------------------
def read_audio(path: str) -> tuple[np.ndarray, int]:
    """Decode an audio file with soundfile: ``(float32 [frames, channels], sample_rate)``."""
    import soundfile

    check_input_file(path, "audio", "*.wav")
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise InvalidInputError(
            f"could not decode audio file {path!r} ({exc}); the file is corrupt or in a format "
            "soundfile cannot read (it reads WAV, FLAC, OGG, MP3 and AIFF) - convert it first, "
            "e.g. ffmpeg -i in.m4a out.wav"
        ) from exc
    if data.shape[0] == 0:
        raise InvalidInputError(f"audio file {path!r} holds no samples; skip it")
    return data, int(rate)


def to_waveform(item: Any, input_sample_rate: int | None = None) -> np.ndarray:
    """One audio input -> mono float32 waveform at 48 kHz.

    Accepts a file path, ``(waveform, sample_rate)``, a ``{"array", "sampling_rate"}`` dict
    (Hugging Face datasets), or a bare array/tensor when ``input_sample_rate`` is set.
    """
    if isinstance(item, (str, os.PathLike)):
        data, rate = read_audio(os.fspath(item))
        return _fit_rate(_mono(data.T, from_file=True), rate)
    data, rate = _unpack(item, input_sample_rate)
    return _fit_rate(_mono(_to_float(data)), rate)


def _fit_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    out = resample(wave, rate)
    if out.size == 0:
        raise InvalidInputError(
            f"{len(wave)} samples at {rate} Hz are shorter than one sample at {SAMPLE_RATE} Hz; "
            "check the sample rate (it is in Hz: e.g. 16000, 44100, 48000)"
        )
    return out


def _unpack(item: Any, input_sample_rate: int | None) -> tuple[np.ndarray, int]:
    if isinstance(item, dict) and "array" in item and "sampling_rate" in item:
        item = (item["array"], item["sampling_rate"])
    if isinstance(item, tuple) and len(item) == 2:
        data, rate = item
        if isinstance(data, (int, np.integer)) and isinstance(rate, (np.ndarray, torch.Tensor)):
            raise InvalidInputError(
                "got (sample_rate, waveform); pass (waveform, sample_rate) - the waveform first"
            )
    elif isinstance(item, (np.ndarray, torch.Tensor)):
        if input_sample_rate is None:
            raise InvalidInputError(
                "a bare waveform has no sample rate: pass (waveform, sample_rate) tuples, or "
                "build the encoder with input_sample_rate=48000 (or your rate)"
            )
        data, rate = item, input_sample_rate
    else:
        raise InvalidInputError(
            f"clap cannot read audio from a {type(item).__name__}; pass a file path, "
            "(waveform, sample_rate), or {'array': ..., 'sampling_rate': ...}"
        )
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().float().numpy()
    rate_ok = isinstance(rate, (int, np.integer)) and not isinstance(rate, bool)
    if not isinstance(data, np.ndarray) or not rate_ok:
        raise InvalidInputError(
            f"expected (numpy array or tensor, int sample rate), got ({type(data).__name__}, "
            f"{type(rate).__name__})"
        )
    if rate <= 0:
        raise InvalidInputError(f"sample rate must be positive, got {rate}")
    if rate < MIN_SAMPLE_RATE:
        raise InvalidInputError(
            f"sample rate {rate} Hz is implausibly low; give it in Hz, not kHz (e.g. 16000, "
            "44100, 48000)"
        )
    return data, int(rate)


def _to_float(data: np.ndarray) -> np.ndarray:
    """PCM integers -> float in [-1, 1]; floats unchanged."""
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.signedinteger):
        return data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    raise InvalidInputError(
        f"unsupported waveform dtype {data.dtype}; use float (-1..1) or signed integer PCM "
        "(int16/int32)"
    )


def _mono(data: np.ndarray, from_file: bool = False) -> np.ndarray:
    """Average channels; 2-D input is channels-first or channels-last (the shorter axis).

    Arrays (not files, whose layout is known) with more than :data:`MAX_ARRAY_CHANNELS`
    channels are refused: they are almost always a batch of clips.
    """
    if data.ndim not in (1, 2):
        hint = (" - a batch? pass a list with one (waveform, sample_rate) per clip"
                if data.ndim > 2 else "")
        raise InvalidInputError(
            f"expected one clip as a 1-D (samples) or 2-D (channels x samples) waveform, got "
            f"shape {tuple(data.shape)}{hint}"
        )
    if data.size == 0:
        raise InvalidInputError(
            f"empty waveform (shape {tuple(data.shape)}): the audio input has no samples; skip it"
        )
    if data.ndim == 2:
        channel_axis = 0 if from_file or data.shape[0] <= data.shape[1] else 1
        channels = data.shape[channel_axis]
        if channels > MAX_ARRAY_CHANNELS and not from_file:
            raise InvalidInputError(
                f"a waveform of shape {tuple(data.shape)} would have {channels} channels; that "
                "looks like a batch of clips - pass a list with one (waveform, sample_rate) per "
                f"clip (genuine audio with over {MAX_ARRAY_CHANNELS} channels: down-mix it "
                "first, e.g. wave.mean(axis=0))"
            )
        data = data.mean(axis=channel_axis)
    if not np.isfinite(data).all():
        raise InvalidInputError(
            "waveform contains NaN or inf values; replace them first (np.nan_to_num)"
        )
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(wave: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr 'HQ' (what ``librosa.load(sr=48000)`` uses upstream); scipy fallback."""
    if rate == target:
        return wave
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr is a dependency
        from scipy.signal import resample_poly

        g = gcd(rate, target)
        return resample_poly(wave, target // g, rate // g).astype(np.float32)
    return soxr.resample(wave, rate, target, quality="HQ").astype(np.float32, copy=False)


# -- fitting the window --------------------------------------------------------------------
def quantize_int16(wave: np.ndarray) -> np.ndarray:
    """Round-trip through int16 as LAION-CLAP's ``CLAP_Module`` does before embedding."""
    pcm = (np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)
    return (pcm / 32767.0).astype(np.float32)


def repeat_pad(wave: np.ndarray, length: int) -> np.ndarray:
    """Tile a short clip ``floor(length / len)`` times, then zero-pad to ``length``."""
    if len(wave) >= length:
        return wave[:length]
    tiled = np.tile(wave, length // len(wave))
    return np.pad(tiled, (0, length - len(tiled)))


def split_windows(wave: np.ndarray, length: int) -> list[np.ndarray]:
    """Cover a long clip with ``length``-sample windows; the last one ends at the clip's end."""
    if len(wave) <= length:
        return [repeat_pad(wave, length)]
    starts = list(range(0, len(wave) - length + 1, length))
    if starts[-1] + length < len(wave):
        starts.append(len(wave) - length)
    return [wave[s:s + length] for s in starts]


def center_crop(wave: np.ndarray, length: int) -> np.ndarray:
    """The central ``length`` samples (repeat-padded when shorter)."""
    if len(wave) <= length:
        return repeat_pad(wave, length)
    start = (len(wave) - length) // 2
    return wave[start:start + length]


# -- log-mel features for fusion models ----------------------------------------------------
def mel_filterbank_htk(params: MelParams) -> torch.Tensor:
    """Triangular HTK-scale mel filters without area normalisation: ``[n_fft // 2 + 1, n_mels]``.

    The filters torchaudio's ``MelSpectrogram(norm=None, mel_scale="htk")`` builds, which
    LAION-CLAP uses for fusion inputs.
    """
    n_freqs = params.n_fft // 2 + 1
    freqs = torch.linspace(0, params.sample_rate // 2, n_freqs, dtype=torch.float64)

    def hz_to_mel(hz: float) -> float:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    mels = torch.linspace(hz_to_mel(params.f_min), hz_to_mel(params.f_max), params.n_mels + 2,
                          dtype=torch.float64)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - left) / (centre - left)
    falling = (right - freqs[:, None]) / (right - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def log_mel(wave: np.ndarray | torch.Tensor, params: MelParams) -> torch.Tensor:
    """Power mel spectrogram in dB (``10 log10(max(x, 1e-10))``): float32 ``[frames, n_mels]``.

    Hann window, centred frames with reflect padding, power 2: torchaudio's
    ``MelSpectrogram`` followed by ``AmplitudeToDB(top_db=None)``, in float64.
    """
    x = torch.as_tensor(wave, dtype=torch.float64)
    spec = torch.stft(
        x, n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.n_fft,
        window=torch.hann_window(params.n_fft, dtype=torch.float64), center=True,
        pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
    )
    power = spec.abs() ** 2  # [freqs, frames]
    mel = mel_filterbank_htk(params).T @ power
    return (10.0 * torch.log10(torch.clamp(mel, min=1e-10))).T.float()


def _chunk_starts(total: int, chunk: int) -> list[int]:
    """Deterministic front / middle / back chunk starts: the middle of each third."""
    thirds = np.array_split(np.arange(total - chunk + 1), 3)
    return [int(t[len(t) // 2]) if len(t) else 0 for t in thirds]


def fusion_features(wave: np.ndarray, params: MelParams) -> tuple[torch.Tensor, bool]:
    """The 4-channel fusion input ``[4, frames, n_mels]`` and whether the clip is "longer".

    For a clip longer than the window, channel 0 is the whole clip's log-mel shrunk to the
    window by bilinear interpolation **without antialiasing**
    (``F.interpolate(mode="bilinear", align_corners=False)``), exactly transformers'
    ``ClapFeatureExtractor``. LAION-CLAP's ``get_audio_features`` calls torchvision's
    ``Resize`` instead, which did not antialias tensors until torchvision 0.17 changed its
    default to ``antialias=True``: the released checkpoints were trained with the plain
    interpolation this function computes, while ``laion_clap`` running next to a current
    torchvision feeds them a smoothed channel (for a 60 s clip up to ~20 dB apart per bin).
    """
    if len(wave) <= params.max_samples:
        mel = log_mel(repeat_pad(wave, params.max_samples), params)
        return mel.expand(4, -1, -1).clone(), False
    mel = log_mel(wave, params)
    chunk = params.max_samples // params.hop_length + 1
    total = mel.shape[0]
    if total == chunk:  # longer than the window by less than one hop
        return mel.expand(4, -1, -1).clone(), False
    chunks = [mel[s:s + chunk] for s in _chunk_starts(total, chunk)]
    # Bilinear without antialiasing: what torchvision's Resize did on tensors before 0.17 (when
    # LAION-CLAP was trained), and what transformers' ClapFeatureExtractor does.
    shrunk = F.interpolate(mel[None, None], size=(chunk, params.n_mels), mode="bilinear",
                           align_corners=False)[0, 0]
    return torch.stack([shrunk, *chunks]), True
