"""The plugin hooks: the ``ref-image`` and ``ref-audio`` encoders and the ``textme demo`` command.

The encoders are the reference world's pretrained two-towers. They stand in for CLIP and CLAP
offline: small contrastive encoders trained by :mod:`textme_reference.pretrain` on generated
pairs, shipped in ``textme_reference/assets`` and showing a real modality gap. This module is
the entry point of the distribution (group ``textme``); importing it loads nothing heavy.

Example:
    >>> from textme_sdk import get_encoder
    >>> from textme_reference import world
    >>> enc = get_encoder("ref-image")
    >>> items = world.sample_items("image", 4, seed=0)
    >>> enc.encode_modal([it.data for it in items]).shape
    torch.Size([4, 64])
"""

from __future__ import annotations

import hashlib
import wave
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textme_sdk import InputSpec, ModalityEncoder, hookimpl
from textme_sdk.errors import InvalidInputError, MissingInputFileError, TextMEError

__all__ = ["ASSETS", "ReferenceAudioEncoder", "ReferenceImageEncoder", "register_commands",
           "register_encoders"]

#: Folder of the shipped weights: ``<modality>.safetensors`` + ``<modality>.json``.
ASSETS = Path(__file__).parent / "assets"
BUILTIN = "builtin"


class _ReferenceEncoder(ModalityEncoder):
    """Shared loading, text encoding and config of the two reference encoders.

    Args:
        weights: ``"builtin"`` (the shipped assets), a ``.safetensors`` file written by
            :func:`~textme_reference.models.save_model`, or a folder holding
            ``<modality>.safetensors``; its ``.json`` config must sit beside it.
        sha256: if given, the weights file must have this SHA-256 (what :meth:`config` records).
        device, dtype: where and how to load.
    """

    license = "Apache-2.0"

    def __init__(self, weights: str = BUILTIN, sha256: str | None = None,
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__(device, dtype)
        from .models import read_config

        self.weights = weights
        self.path = self._resolve(weights)
        arch = read_config(self.path)["config"]
        if arch["modality"] != self.modality:
            raise TextMEError(f"{self.path} holds a {arch['modality']} encoder, not {self.modality}")
        self.embedding_dim = int(arch["embed_dim"])
        self.expected_sha256 = sha256
        self._model: Any = None

    def _resolve(self, weights: str) -> Path:
        if weights == BUILTIN:
            path = ASSETS / f"{self.modality}.safetensors"
        else:
            path = Path(weights).expanduser()
            path = path / f"{self.modality}.safetensors" if path.is_dir() else path
        if not path.is_file():
            raise MissingInputFileError(
                f"reference {self.modality} weights not found at {path}; pass weights='builtin' "
                "or retrain: python -m textme_reference.pretrain --modality "
                f"{self.modality} --out DIR"
            )
        return path

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the weights file."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def load_model(self, device: torch.device, dtype: torch.dtype | None) -> None:
        from .models import load_model

        if self._model is None:
            if self.expected_sha256 and self.expected_sha256 != self.sha256:
                raise TextMEError(
                    f"{self.path} has SHA-256 {self.sha256[:12]}..., but {self.expected_sha256[:12]}... "
                    "was expected (the weights changed since this config was written)"
                )
            self._model = load_model(self.path)
        self._model.to(device=device, dtype=dtype or torch.float32)

    def encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        return self._model.encode_text(texts)

    def encode_modal_batch(self, batch: torch.Tensor) -> torch.Tensor:
        p = self._model.logit_scale
        return self._model.encode_modal(batch.to(device=p.device, dtype=p.dtype))

    def text_length(self, text: str) -> int:
        return len(text.split())

    def config(self) -> dict[str, Any]:
        weights = self.weights if self.weights == BUILTIN else str(self.path.resolve())
        return {"weights": weights, "sha256": self.sha256}


class ReferenceImageEncoder(_ReferenceEncoder):
    """The reference world's image encoder (64-d), trained CLIP-style on generated pictures."""

    name = "ref-image"
    modality = "image"
    embedding_dim = 64
    input_spec = InputSpec(
        "image",
        "RGB pictures: uint8 numpy arrays [H, W, 3] or [3, H, W], float arrays in [0, 1], PIL "
        "images, torch tensors, image file paths or reference-world Items; resized to 32 x 32",
        (".png", ".jpg", ".jpeg", ".bmp"),
    )

    def preprocess(self, inputs: list[Any]) -> torch.Tensor:
        """Raw pictures -> float ``[N, 3, 32, 32]`` in [0, 1]."""
        from .models import image_batch

        return image_batch(np.stack([_to_pixels(x) for x in inputs]))


class ReferenceAudioEncoder(_ReferenceEncoder):
    """The reference world's audio encoder (48-d), trained CLIP-style on synthesised clips."""

    name = "ref-audio"
    modality = "audio"
    embedding_dim = 48
    input_spec = InputSpec(
        "audio",
        "mono waveforms at 8 kHz (float numpy arrays or torch tensors [samples]), "
        "(waveform, sample_rate) tuples, .wav paths or reference-world Items; resampled to "
        "8 kHz and cropped or zero-padded to 0.75 s",
        (".wav",),
    )

    def preprocess(self, inputs: list[Any]) -> torch.Tensor:
        """Raw clips -> float ``[N, 6000]``."""
        from .models import audio_batch

        return audio_batch([_to_wave(x) for x in inputs])


# -- input conversion ------------------------------------------------------------------------
def _unwrap_item(x: Any) -> Any:
    """A reference-world :class:`~textme_reference.world.Item` stands for its raw data."""
    from .world import Item

    return x.data if isinstance(x, Item) else x


def _to_pixels(x: Any) -> np.ndarray:
    """One picture as ``uint8 [32, 32, 3]``."""
    from .images import IMAGE_SIZE

    x = _unwrap_item(x)
    if isinstance(x, (str, Path)):
        from PIL import Image

        with Image.open(x) as img:
            x = img.convert("RGB")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        x = _pil_to_array(x)
    arr = _hwc_uint8(x)
    if arr.shape[:2] != (IMAGE_SIZE, IMAGE_SIZE):
        from PIL import Image

        arr = np.asarray(Image.fromarray(arr).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
    return arr


def _pil_to_array(x: Any) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow ships with the dev extras
        raise InvalidInputError(f"cannot read a {type(x).__name__} as an image") from exc
    if not isinstance(x, Image.Image):
        raise InvalidInputError(
            f"ref-image cannot read a {type(x).__name__}; pass a numpy array, torch tensor, "
            "PIL image or file path"
        )
    return np.asarray(x.convert("RGB"))


def _hwc_uint8(arr: np.ndarray) -> np.ndarray:
    """Any of [H, W], [H, W, 3|4], [3|4, H, W], uint8 or float in [0, 1] -> uint8 [H, W, 3]."""
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[-1] not in (3, 4) and arr.shape[0] in (3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise InvalidInputError(f"ref-image expects an RGB picture, got an array of shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = np.clip(np.asarray(arr, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _to_wave(x: Any) -> np.ndarray:
    """One clip as float32 mono at 8 kHz."""
    from .sounds import SAMPLE_RATE

    x = _unwrap_item(x)
    rate = SAMPLE_RATE
    if isinstance(x, (str, Path)):
        x, rate = _read_wav(Path(x))
    elif isinstance(x, tuple) and len(x) == 2:
        x, rate = x
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise InvalidInputError(
            f"ref-audio cannot read a {type(x).__name__}; pass a waveform array or tensor, a "
            "(waveform, sample_rate) tuple or a .wav path"
        )
    wav = _mono_float(x)
    return _resample(wav, int(rate), SAMPLE_RATE) if int(rate) != SAMPLE_RATE else wav


def _mono_float(x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=int(np.argmin(x.shape)))
    if x.ndim != 1:
        raise InvalidInputError(f"ref-audio expects a 1-D waveform, got shape {x.shape}")
    return x


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling (enough for this toy world)."""
    n_out = round(len(x) * target / rate)
    return np.interp(np.arange(n_out) * (rate / target), np.arange(len(x)), x).astype(np.float32)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A PCM .wav file as ``(samples [n] or [n, channels], rate)`` with the stdlib reader."""
    dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
    with wave.open(str(path), "rb") as f:
        width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
        raw = f.readframes(f.getnframes())
    if width not in dtypes:
        raise InvalidInputError(f"{path}: {8 * width}-bit PCM is not supported; use 8/16/32-bit")
    data = np.frombuffer(raw, dtype=dtypes[width]).reshape(-1, channels)
    if width == 1:
        data = (data.astype(np.int16) - 128).astype(np.int8)
    return data, rate


@hookimpl
def register_encoders(register: Any) -> None:
    """Register ``ref-image`` and ``ref-audio`` (shipped weights, no download)."""
    register("ref-image", ReferenceImageEncoder, modality="image", license="Apache-2.0",
             default_model=BUILTIN, extra="demo",
             description="reference-world image encoder (64-d), offline stand-in for CLIP")
    register("ref-audio", ReferenceAudioEncoder, modality="audio", license="Apache-2.0",
             default_model=BUILTIN, extra="demo",
             description="reference-world audio encoder (48-d), offline stand-in for CLAP")


@hookimpl
def register_commands(app: Any) -> None:
    """Add ``textme demo`` (the reference world end to end; see :mod:`textme_reference.demo`)."""
    from .cli import demo_command

    app.command("demo")(demo_command)
