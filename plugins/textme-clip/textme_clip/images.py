"""Turn the image inputs users pass (paths, PIL images, arrays, tensors) into RGB PIL images.

The model's own open_clip transform then resizes, crops and normalises them, so every input
kind goes through exactly the preprocessing the weights were trained with.

Layout conventions:

* numpy arrays are ``H x W`` (greyscale) or ``H x W x C`` (PIL / imageio convention);
  ``C x H x W`` is accepted when the last axis cannot be channels.
* torch tensors are ``C x H x W`` (torchvision convention) or ``H x W``; ``H x W x C`` is
  accepted when the first axis cannot be channels.
* ``uint8`` holds 0..255; floating point holds 0..1 (anything else is rejected, not guessed).
* 16-bit images (PIL modes ``I;16*`` and ``I``, e.g. 16-bit greyscale PNG/TIFF) are scaled
  from 0..65535 to 0..255; PIL's own ``convert("RGB")`` would saturate them to white.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from textme_sdk.encoders import check_input_file
from textme_sdk.errors import InvalidInputError
from textme_sdk.images import to_hwc, to_uint8

__all__ = ["to_pil", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
)
_CHANNELS = (1, 3, 4)


def to_pil(item: Any) -> Image.Image:
    """Convert one image input to an RGB :class:`PIL.Image.Image`.

    Raises:
        InvalidInputError: unknown type, missing or undecodable file, batched array, a channel
            count other than 1, 3 or 4, zero size, or values out of range.
    """
    if isinstance(item, Image.Image):
        return _pil_to_rgb(item)
    if isinstance(item, (str, os.PathLike)):
        return _open(os.fspath(item))
    if isinstance(item, torch.Tensor):
        return _array_to_pil(_tensor_to_hwc(item))
    if isinstance(item, np.ndarray):
        return _array_to_pil(_numpy_to_hwc(item))
    raise InvalidInputError(
        f"clip cannot read an image from a {type(item).__name__}; pass a file path, a PIL "
        "image, a numpy array (H x W x C) or a torch tensor (C x H x W)"
    )


def _open(path: str) -> Image.Image:
    check_input_file(path, "image", "*.jpg")
    try:
        with Image.open(path) as img:
            return _pil_to_rgb(img)
    except InvalidInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(
            f"image {path!r} is too large for PIL's decompression-bomb guard ({exc}); if you "
            "trust it, raise PIL.Image.MAX_IMAGE_PIXELS or downscale it first"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some headers
        raise InvalidInputError(
            f"could not decode image {path!r} ({exc}); the file is corrupt or not an image - "
            "re-export it as PNG or JPEG"
        ) from exc


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of a PIL image; 16/32-bit integer and float modes are scaled, not saturated."""
    if img.width == 0 or img.height == 0:
        raise InvalidInputError(f"image has zero size ({img.width} x {img.height}); skip it")
    if img.mode.startswith("I;16"):
        return _array_to_pil(np.asarray(img).astype(np.float32)[:, :, None] / 65535.0)
    if img.mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise InvalidInputError(
                f"32-bit integer image with values in [{arr.min()}, {arr.max()}]; scale it to "
                "uint8 (0..255) or float (0..1) first"
            )
        return _array_to_pil(arr.astype(np.float32)[:, :, None] / 65535.0)
    if img.mode == "F":
        return _array_to_pil(np.asarray(img, dtype=np.float32)[:, :, None])
    return img.convert("RGB")


def _numpy_to_hwc(arr: np.ndarray) -> np.ndarray:
    return to_hwc(arr, "clip", "image",
                  channel_hint=("; convert it to RGB (3 channels), greyscale (1) or RGBA (4), e.g. keep the "
                "first 3 channels"))


def _tensor_to_hwc(tensor: torch.Tensor) -> np.ndarray:
    return to_hwc(tensor, "clip", "image",
                  channel_hint=("; convert it to RGB (3 channels), greyscale (1) or RGBA (4), e.g. keep the "
                "first 3 channels"))


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return to_uint8(arr)


def _array_to_pil(hwc: np.ndarray) -> Image.Image:
    if hwc.shape[0] == 0 or hwc.shape[1] == 0:
        raise InvalidInputError(f"image has zero size (shape {tuple(hwc.shape)}); skip it")
    data = _to_uint8(np.ascontiguousarray(hwc))
    channels = data.shape[-1]
    if channels == 1:
        return Image.fromarray(data[:, :, 0]).convert("RGB")
    if channels == 4:
        return Image.fromarray(data).convert("RGB")
    return Image.fromarray(data)
