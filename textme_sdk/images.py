"""Image-array helpers shared by image-like encoder plugins (``clip``, ``cxr_clip``...).

Plugins accept one picture as a numpy array or a tensor in either channel layout; these
helpers bring it to ``H x W x C`` and explain a wrong shape with a typed error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .errors import InvalidInputError

__all__ = ["CHANNELS", "to_hwc", "to_uint8"]

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
) -> np.ndarray:
    """Pixel values as uint8: uint8 as is, bool as 0/255, floats in [0, 1] scaled by 255.

    Args:
        arr: the pixels.
        range_hint: the fix named when floats fall outside [0, 1].
        integers: how other integer dtypes are converted (e.g. stretched); refused when ``None``.
        dtype_hint: the fix named for an unsupported dtype.

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
                "image array contains NaN or inf values; replace them first (np.nan_to_num)"
            )
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise InvalidInputError(
                f"float images must hold values in [0, 1], got [{lo:.3g}, {hi:.3g}]; {range_hint}"
            )
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    if integers is not None and np.issubdtype(arr.dtype, np.integer):
        return integers(arr)
    raise InvalidInputError(f"unsupported image dtype {arr.dtype}; {dtype_hint}")
