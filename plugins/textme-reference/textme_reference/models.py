"""Tiny two-tower contrastive encoders of the reference world, in plain torch.

Each :class:`ReferenceCLIP` pairs a modal tower (:class:`ImageTower`: a small CNN over
32 x 32 RGB; :class:`AudioTower`: log-mel features computed in torch + a 1-D CNN) with its own
text tower (:class:`TextTower`: a two-layer transformer over a word vocabulary built from the
caption generator, with ``[UNK]``), projects both to a shared space (64-d for images, 48-d for
audio) and keeps CLIP's learnable logit scale. Architectures are data
(:class:`ReferenceConfig`, stored as JSON beside the safetensors weights).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import images, sounds
from .world import split_words, vocabulary

__all__ = [
    "CONFIG_FORMAT",
    "AudioTower",
    "ImageTower",
    "ReferenceCLIP",
    "ReferenceConfig",
    "TextTower",
    "WordTokenizer",
    "audio_batch",
    "build_model",
    "clip_loss",
    "default_config",
    "image_batch",
    "load_model",
    "mel_filterbank",
    "read_config",
    "save_model",
]

#: The ``format`` tag of the JSON written beside the weights.
CONFIG_FORMAT = "textme-reference-encoder/1"


@dataclass
class ReferenceConfig:
    """The architecture of one reference encoder (everything needed to rebuild it).

    Attributes:
        modality: ``"image"`` or ``"audio"``.
        embed_dim: the shared embedding size ``d_m``.
        vocab: the text tower's words (``[PAD]``, ``[UNK]``, ``[CLS]`` are added in front).
        max_len: maximum tokens per text, ``[CLS]`` included.
        text_width, text_layers, text_heads: the text transformer's size.
        channels: channels of the modal tower's convolution stages.
        hidden: width of the modal tower's MLP head.
        init_temperature: CLIP's initial softmax temperature (logit scale = 1 / temperature).
    """

    modality: str
    embed_dim: int
    vocab: list[str]
    max_len: int = 24
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    channels: list[int] = field(default_factory=lambda: [24, 48, 96])
    hidden: int = 128
    init_temperature: float = 0.01

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown reference-encoder config keys: {sorted(unknown)}")
        return cls(**data)


def default_config(modality: str) -> ReferenceConfig:
    """The shipped architecture: 64-d image encoder, 48-d audio encoder."""
    if modality == "image":
        return ReferenceConfig("image", 64, vocabulary("image"), channels=[16, 32, 64])
    if modality == "audio":
        return ReferenceConfig("audio", 48, vocabulary("audio"), channels=[64, 96, 128])
    raise ValueError(f"unknown modality {modality!r}; choose 'image' or 'audio'")


# -- text ------------------------------------------------------------------------------------
class WordTokenizer:
    """Deterministic word-level tokenizer: lower-cased alphabetic words, ``[CLS]`` first.

    Unknown words map to ``[UNK]``; texts longer than ``max_len`` are truncated.
    """

    PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"

    def __init__(self, words: Sequence[str], max_len: int):
        self.tokens = [self.PAD, self.UNK, self.CLS, *words]
        self.index = {w: i for i, w in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("the vocabulary has duplicate words")
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, text: str) -> list[int]:
        """Token ids of one text (``[CLS]`` + words), truncated to ``max_len``."""
        unk = self.index[self.UNK]
        words = [self.index.get(w, unk) for w in split_words(text)]
        return [self.index[self.CLS], *words][: self.max_len]

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids [N, L] long, padding mask [N, L] bool, True = padding)``, L = longest text."""
        rows = [self.ids(t) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids == self.index[self.PAD]


class TextTower(nn.Module):
    """Token + position embeddings, pre-norm transformer layers, ``[CLS]`` pooling, projection."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        n_tokens = len(cfg.vocab) + 3
        self.token_embedding = nn.Embedding(n_tokens, cfg.text_width)
        self.position_embedding = nn.Parameter(torch.randn(cfg.max_len, cfg.text_width) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                cfg.text_width, cfg.text_heads, dim_feedforward=2 * cfg.text_width, dropout=0.0,
                activation="gelu", batch_first=True, norm_first=True,
            )
            for _ in range(cfg.text_layers)
        )
        self.ln_final = nn.LayerNorm(cfg.text_width)
        self.projection = nn.Linear(cfg.text_width, cfg.embed_dim, bias=False)

    def forward(self, ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        return self.projection(self.ln_final(x[:, 0]))


# -- modal towers ----------------------------------------------------------------------------
def _conv_stages(dims: Sequence[int], conv: type[nn.Module], pool: type[nn.Module],
                 kernel: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in pairwise(dims):
        layers += [conv(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU(), pool(2)]
    return nn.Sequential(*layers)


class ImageTower(nn.Module):
    """Three conv + pool stages over a 32 x 32 RGB image, then an MLP head.

    The head sees the final feature map both as it is (where things are) and max-pooled over
    space (what is there, wherever it is). Input: float ``[N, 3, 32, 32]`` in [0, 1] (see
    :func:`image_batch`).
    """

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.features = _conv_stages([3, *cfg.channels], nn.Conv2d, nn.MaxPool2d, 3)
        side = images.IMAGE_SIZE // 2 ** len(cfg.channels)
        self.head = nn.Sequential(
            nn.Linear(cfg.channels[-1] * (side * side + 1), cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, cfg.embed_dim, bias=False),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        maps = self.features((pixels - 0.5) / 0.25)
        return self.head(torch.cat([maps.flatten(1), maps.amax(dim=(2, 3))], dim=1))


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    """Triangular filters evenly spaced on the mel scale: ``[n_mels, n_fft // 2 + 1]``."""
    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(np.array(40.0)), to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return torch.tensor(np.clip(np.minimum(rising, falling), 0.0, None), dtype=torch.float32)


class LogMel(nn.Module):
    """Log-mel spectrogram in torch: ``[N, samples] -> [N, n_mels, frames]`` (no weights)."""

    def __init__(self, n_mels: int = 40, n_fft: int = 256, hop: int = 128):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(n_mels, n_fft, sounds.SAMPLE_RATE),
                             persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(waves, self.n_fft, self.hop, window=self.window, return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.filters, power)
        return (torch.log10(mel + 1e-5) + 2.5) / 2.0


class AudioTower(nn.Module):
    """Log-mel features, three 1-D conv stages over time, then an MLP head.

    Input: float ``[N, 6000]`` waveforms at 8 kHz (see :func:`audio_batch`).
    """

    n_mels = 40

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.logmel = LogMel(self.n_mels)
        self.features = _conv_stages([self.n_mels, *cfg.channels], nn.Conv1d, nn.MaxPool1d, 5)
        frames = sounds.NUM_SAMPLES // self.logmel.hop + 1
        for _ in cfg.channels:
            frames //= 2
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cfg.channels[-1] * frames, cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, cfg.embed_dim, bias=False),
        )

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.logmel(waves)))


# -- the two-tower model ---------------------------------------------------------------------
class ReferenceCLIP(nn.Module):
    """A text tower and a modal tower projected into one space, with a learnable logit scale."""

    def __init__(self, cfg: ReferenceConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = WordTokenizer(cfg.vocab, cfg.max_len)
        self.text = TextTower(cfg)
        self.modal: nn.Module = ImageTower(cfg) if cfg.modality == "image" else AudioTower(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Unnormalised text embeddings ``[N, embed_dim]``."""
        ids, padding = self.tokenizer(texts)
        device = self.logit_scale.device
        return self.text(ids.to(device), padding.to(device))

    def encode_modal(self, batch: torch.Tensor) -> torch.Tensor:
        """Unnormalised modal embeddings ``[N, embed_dim]`` of a preprocessed batch."""
        return self.modal(batch)

    def forward(self, batch: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """The symmetric InfoNCE loss of matching pairs ``(batch[i], texts[i])``."""
        return clip_loss(self.encode_modal(batch), self.encode_text(texts), self.logit_scale)


def build_model(cfg: ReferenceConfig) -> ReferenceCLIP:
    """A freshly initialised model of architecture ``cfg``."""
    if cfg.modality not in ("image", "audio"):
        raise ValueError(f"unknown modality {cfg.modality!r}")
    return ReferenceCLIP(cfg)


def clip_loss(modal: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over cosine logits scaled by ``exp(logit_scale)``."""
    modal, text = F.normalize(modal, dim=-1), F.normalize(text, dim=-1)
    logits = logit_scale.clamp(max=math.log(100.0)).exp() * modal @ text.T
    target = torch.arange(len(modal), device=modal.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


# -- input batches ---------------------------------------------------------------------------
def image_batch(pixels: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """``uint8 [N, 32, 32, 3]`` (HWC) pictures -> float ``[N, 3, 32, 32]`` in [0, 1]."""
    arr = np.ascontiguousarray(np.stack(list(pixels)) if not isinstance(pixels, np.ndarray) else pixels)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


def audio_batch(waves: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """Mono 8 kHz waveforms -> float ``[N, 6000]``, each cropped or zero-padded to 0.75 s."""
    out = torch.zeros(len(waves), sounds.NUM_SAMPLES)
    for i, w in enumerate(waves):
        w = np.asarray(w, dtype=np.float32).reshape(-1)[: sounds.NUM_SAMPLES]
        out[i, : len(w)] = torch.from_numpy(w)
    return out


# -- files -----------------------------------------------------------------------------------
def save_model(model: ReferenceCLIP, weights: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``weights`` (safetensors) and its JSON config (same stem, ``.json``); returns it."""
    from safetensors.torch import save_file

    weights = Path(weights)
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(weights), metadata={"format": CONFIG_FORMAT})
    doc = {"format": CONFIG_FORMAT, "config": model.cfg.to_dict(), **(metadata or {})}
    weights.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    return weights


def read_config(weights: str | Path) -> dict[str, Any]:
    """The JSON document beside ``weights`` (architecture under ``"config"``)."""
    path = Path(weights).with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; a reference encoder needs its JSON config")
    doc = json.loads(path.read_text())
    if doc.get("format") != CONFIG_FORMAT:
        raise ValueError(f"{path} is not a reference-encoder config (format {doc.get('format')!r})")
    return doc


def load_model(weights: str | Path) -> ReferenceCLIP:
    """Rebuild the model from ``weights`` and its JSON config; loading is strict."""
    from safetensors.torch import load_file

    model = build_model(ReferenceConfig.from_dict(read_config(weights)["config"]))
    model.load_state_dict(load_file(str(weights)), strict=True)
    return model.eval()
