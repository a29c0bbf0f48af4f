"""Turn the image inputs users pass (paths, PIL images, arrays, tensors) into RGB PIL images.

The model's own open_clip transform then resizes, crops and normalises them, so every input
kind goes through exactly the preprocessing the weights were trained with.

Layout conventions (those of :class:`textme_sdk.images.ImageReader`):

* numpy arrays are ``H x W`` (greyscale) or ``H x W x C`` (PIL / imageio convention);
  ``C x H x W`` is accepted when the last axis cannot be channels.
* torch tensors are ``C x H x W`` (torchvision convention) or ``H x W``; ``H x W x C`` is
  accepted when the first axis cannot be channels.
* ``uint8`` holds 0..255; floating point holds 0..1 (anything else is rejected, not guessed).
* 16-bit images (PIL modes ``I;16*`` and ``I``, e.g. 16-bit greyscale PNG/TIFF) are scaled
  from 0..65535 to 0..255; PIL's own ``convert("RGB")`` would saturate them to white.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from textme_sdk.images import ImageReader

__all__ = ["to_pil", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
)

_READER = ImageReader(
    "clip",
    channel_hint="; convert it to RGB (3 channels), greyscale (1) or RGBA (4), e.g. keep the "
                 "first 3 channels",
)


def to_pil(item: Any) -> Image.Image:
    """Convert one image input to an RGB :class:`PIL.Image.Image`.

    Raises:
        InvalidInputError: unknown type, missing or undecodable file, batched array, a channel
            count other than 1, 3 or 4, zero size, or values out of range.
    """
    return _READER(item)
