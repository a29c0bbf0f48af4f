"""Image helpers shared by image-like encoder plugins (``clip``, ``cxr_clip``...).

Plugins accept one picture as a file path, a PIL image, a numpy array or a tensor (in either
channel layout). :class:`ImageReader` turns any of them into an RGB PIL image for the model's
own transform; :func:`to_hwc` and :func:`to_uint8` bring arrays to ``H x W x C`` uint8. Each
explains a bad input with a typed error that names the fix. PIL is imported only when used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .encoders import check_input_file
from .errors import InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["CHANNELS", "ImageReader", "to_hwc", "to_uint8"]

#: Channel counts an image may have: greyscale, RGB, RGBA.
CHANNELS = (1, 3, 4)


def to_hwc(image: np.ndarray | torch.Tensor, who: str, thing: str = "image",
           channel_hint: str = "; pass greyscale (1 channel), RGB (3) or RGBA (4)") -> np.ndarray:
    """One picture as an ``H x W x C`` numpy array (``H x W`` gains a channel axis).

    numpy arrays are read as ``H x W x C`` first (then ``C x H x W``); tensors as ``C x H x W``
    first (then ``H x W x C``), following each library's convention. Half-precision tensors
    come back as float32.

    Args:
        image: the picture.
        who: the plugin name, for the error message.
        thing: what one input is called in the message (``"image"``, ``"radiograph"``).
        channel_hint: appended to the message of a 3-d input with a bad channel count.

    Raises:
        InvalidInputError: not 2-d or 3-d with 1, 3 or 4 channels (a 4-d batch is explained).
    """
    tensor = isinstance(image, torch.Tensor)
    if tensor:
        t = image.detach().cpu()
        arr = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()
    else:
        arr = np.asarray(image)
    if arr.ndim == 2:
        return arr[:, :, None]
    if arr.ndim == 3:
        first, last = arr.shape[0] in CHANNELS, arr.shape[-1] in CHANNELS
        if tensor and first:
            return np.moveaxis(arr, 0, -1)
        if last:
            return arr
        if first:
            return np.moveaxis(arr, 0, -1)
    what, layout = ("tensor", "C x H x W") if tensor else ("numpy array", "H x W x C")
    if arr.ndim == 4:
        hint = "; a batch? pass a list of images instead, e.g. list(batch)"
    elif arr.ndim == 3:
        hint = channel_hint
    else:
        hint = ""
    raise InvalidInputError(f"{who} expects one {thing} per {what} laid out {layout} with 1, 3 "
                            f"or 4 channels; got shape {tuple(arr.shape)}{hint}")


def to_uint8(
    arr: np.ndarray,
    range_hint: str = "divide 0..255 data by 255 or pass it as uint8",
    integers: Callable[[np.ndarray], np.ndarray] | None = None,
    dtype_hint: str = "use uint8 (0..255) or float (0..1)",
    thing: str = "image",
) -> np.ndarray:
    """Pixel values as uint8: uint8 as is, bool as 0/255, floats in [0, 1] scaled by 255.

    Args:
        arr: the pixels.
        range_hint: the fix named when floats fall outside [0, 1].
        integers: how other integer dtypes are converted (e.g. stretched); refused when ``None``.
        dtype_hint: the fix named for an unsupported dtype.
        thing: what the pixels are called in messages (``"image"``, ``"frame"``).

    Raises:
        InvalidInputError: NaN/inf, floats outside [0, 1], or an unsupported dtype.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InvalidInputError(
                f"{thing} array contains NaN or inf values; replace them first (np.nan_to_num)"
            )
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InvalidInputError(
                f"float {thing}s must hold values in [0, 1], got [{lo:.3g}, {hi:.3g}]; {range_hint}"
            )
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if integers is not None and np.issubdtype(arr.dtype, np.integer):
        return integers(arr)
    raise InvalidInputError(f"unsupported {thing} dtype {arr.dtype}; {dtype_hint}")


@dataclass(frozen=True)
class ImageReader:
    """Reads one image input as an RGB PIL image, with typed errors that name the fix.

    Inputs: file paths (opened with PIL), PIL images, numpy arrays (``H x W x C`` or ``H x W``,
    see :func:`to_hwc`) and torch tensors (``C x H x W``). ``uint8`` holds 0..255 and floats
    0..1 (:func:`to_uint8`); greyscale and RGBA become RGB; PIL images of 16-bit and 32-bit
    integer modes are scaled from 0..65535 (PIL's own ``convert("RGB")`` would saturate them
    to white) and float images (mode ``F``) must hold 0..1.

    A plugin makes one reader and adapts it by subclassing: :meth:`wide_mode` (images beyond
    8 bits), :meth:`pixels_to_uint8` (array values), :meth:`read_file` (formats PIL cannot
    open) and :meth:`other` (further input types).

    Attributes:
        who: the plugin name, for messages.
        thing: what one input is called (``"image"``, ``"radiograph"``).
        example_glob: a pattern suggested when a folder is passed instead of a file.
        formats: what a file that cannot be decoded should be re-exported as.
        accepted: the input kinds listed when an input has an unknown type.
        channel_hint: the fix named for an array with a bad channel count.

    Example:
        >>> read = ImageReader("clip")
        >>> read(np.zeros((4, 6), np.uint8)).size
        (6, 4)
    """

    who: str
    thing: str = "image"
    example_glob: str = "*.jpg"
    formats: str = "PNG or JPEG"
    accepted: str = ("a file path, a PIL image, a numpy array (H x W x C) or a torch tensor "
                     "(C x H x W)")
    channel_hint: str = "; pass greyscale (1 channel), RGB (3) or RGBA (4)"

    def __call__(self, item: Any) -> Image.Image:
        """``item`` as an RGB PIL image.

        Raises:
            InvalidInputError: unknown type, missing or undecodable file, batched array, a
                channel count other than 1, 3 or 4, zero size, or values out of range.
            MissingInputFileError: a path that does not exist.
        """
        from PIL import Image

        if isinstance(item, Image.Image):
            return self.from_pil(item)
        if isinstance(item, (str, os.PathLike)):
            return self.read_file(os.fspath(item))
        if isinstance(item, (np.ndarray, torch.Tensor)):
            return self.from_hwc(to_hwc(item, self.who, self.thing, self.channel_hint))
        image = self.other(item)
        if image is None:
            article = "an" if self.thing[:1] in "aeiou" else "a"
            raise InvalidInputError(f"{self.who} cannot read {article} {self.thing} from a "
                                    f"{type(item).__name__}; pass {self.accepted}")
        return image

    def read_file(self, path: str) -> Image.Image:
        """Open ``path`` with PIL and convert it with :meth:`from_pil`."""
        from PIL import Image

        check_input_file(path, self.thing, self.example_glob)
        try:
            with Image.open(path) as img:
                img.load()
                return self.from_pil(img)
        except InvalidInputError:
            raise
        except Image.DecompressionBombError as exc:
            raise InvalidInputError(
                f"image {path!r} is too large for PIL's decompression-bomb guard ({exc}); if "
                "you trust it, raise PIL.Image.MAX_IMAGE_PIXELS or downscale it first"
            ) from exc
        except (OSError, ValueError, SyntaxError) as exc:  # SyntaxError: some broken headers
            raise InvalidInputError(
                f"could not decode image {path!r} ({exc}); the file is corrupt or not an image "
                f"- re-export it as {self.formats}"
            ) from exc

    def from_pil(self, img: Image.Image) -> Image.Image:
        """An RGB copy of a PIL image (wide modes through :meth:`wide_mode`)."""
        if img.width == 0 or img.height == 0:
            raise InvalidInputError(f"image has zero size ({img.width} x {img.height}); skip it")
        wide = self.wide_mode(img)
        return wide if wide is not None else img.convert("RGB")

    def wide_mode(self, img: Image.Image) -> Image.Image | None:
        """An RGB image for PIL modes beyond 8 bits per channel, ``None`` for the others.

        16-bit (``I;16*``) and 32-bit integer (``I``) images are scaled from 0..65535 to
        0..255; float images (``F``) must hold 0..1.
        """
        if img.mode.startswith("I;16"):
            return self.from_hwc(np.asarray(img).astype(np.float32)[:, :, None] / 65535.0)
        if img.mode == "I":
            arr = np.asarray(img)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise InvalidInputError(
                    f"32-bit integer image with values in [{arr.min()}, {arr.max()}]; scale it "
                    "to uint8 (0..255) or float (0..1) first"
                )
            return self.from_hwc(arr.astype(np.float32)[:, :, None] / 65535.0)
        if img.mode == "F":
            return self.from_hwc(np.asarray(img, dtype=np.float32)[:, :, None])
        return None

    def from_hwc(self, hwc: np.ndarray) -> Image.Image:
        """An ``H x W x C`` array (1, 3 or 4 channels) as an RGB PIL image."""
        from PIL import Image

        if hwc.shape[0] == 0 or hwc.shape[1] == 0:
            raise InvalidInputError(f"image has zero size (shape {tuple(hwc.shape)}); skip it")
        data = self.pixels_to_uint8(np.ascontiguousarray(hwc))
        if data.shape[-1] == 1:
            return Image.fromarray(data[:, :, 0]).convert("RGB")
        if data.shape[-1] == 4:
            return Image.fromarray(data).convert("RGB")
        return Image.fromarray(data)

    def pixels_to_uint8(self, arr: np.ndarray) -> np.ndarray:
        """Array values as uint8 (default :func:`to_uint8`: uint8, bool, or floats in 0..1)."""
        return to_uint8(arr)

    def other(self, item: Any) -> Image.Image | None:
        """An input of another type as an RGB image, or ``None`` when it is not readable."""
        return None
