"""Radiographs in, CXR-CLIP input tensors out.

Upstream (kakaobrain/cxr-clip ``cxrclip/data/datasets/*.py`` and ``data_utils.py``) reads every
image with ``PIL.Image.open(path).convert("RGB")`` - its datasets are 8-bit JPEG/PNG
(MIMIC-CXR-JPG, CheXpert, ChestX-ray14) - and evaluates with torchvision
``Resize(224)`` (shorter side, bilinear) + ``CenterCrop(224)`` + ``ToTensor`` + ``Normalize``
(mean = std = 0.5 for Swin, ImageNet statistics for ResNet). :func:`to_rgb` reproduces the
``convert("RGB")`` step for 8-bit images (greyscale replicated into three channels) and adds
what 8-bit pipelines lack, so that other radiograph sources reach the same 8-bit greyscale:

* **16-bit images** (PNG/TIFF modes ``I;16``/``I``, float TIFF, ``uint16``/``int16`` arrays):
  stretched linearly from the image's own minimum..maximum to 0..255 (PIL's ``convert`` would
  saturate them to white; a 12-bit image stored in 16 bits would be nearly black if scaled by
  65535);
* **DICOM** (``.dcm``/``.dicom`` files, any file with the ``DICM`` preamble, or a
  ``pydicom.Dataset``): the modality LUT (Rescale Slope / Intercept), then the first VOI window
  (Window Center / Width with the LINEAR, LINEAR_EXACT or SIGMOID function of DICOM PS3.3
  C.11.2.1.2) or the VOI LUT sequence, else a min..max stretch; ``MONOCHROME1`` is inverted so
  that bone is bright as in ``MONOCHROME2``; then 8-bit greyscale. Multi-frame files are
  refused; compressed transfer syntaxes need pydicom's optional decoders.

Arrays and tensors follow the clip plugin's conventions (:class:`textme_sdk.images.ImageReader`):
``H x W`` or ``H x W x C`` numpy arrays (``C x H x W`` when unambiguous), ``C x H x W`` tensors;
``uint8`` is 0..255, floats must be in 0..1, wider integers are stretched as 16-bit images are.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from textme_sdk.encoders import check_input_file
from textme_sdk.errors import InvalidInputError
from textme_sdk.images import ImageReader, to_uint8

__all__ = [
    "RADIOGRAPH_EXTENSIONS",
    "build_transform",
    "dicom_to_grey",
    "is_dicom_file",
    "read_dicom",
    "stretch",
    "to_rgb",
    "window",
]

RADIOGRAPH_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".dcm", ".dicom",
)
_DICOM_SUFFIXES = (".dcm", ".dicom")


# -- entry point -------------------------------------------------------------------------------
def to_rgb(item: Any) -> Image.Image:
    """Convert one radiograph input into the RGB PIL image upstream's transforms expect.

    Raises:
        InvalidInputError: unknown type, unreadable or non-image file, batched array, wrong
            channel count, zero size, NaN/inf, or values out of range.
        MissingInputFileError: a path that does not exist.
    """
    return _READER(item)


def build_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    """torchvision ``Resize(size) -> CenterCrop(size) -> ToTensor -> Normalize``: upstream's
    ``transform/default.yaml`` test split and ``transform_image``."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.Resize(image_size),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize(mean=list(mean), std=list(std)),
    ])


# -- files -------------------------------------------------------------------------------------
def is_dicom_file(path: str) -> bool:
    """``.dcm``/``.dicom`` suffix, or the ``DICM`` magic at byte 128 (DICOM Part 10)."""
    if path.lower().endswith(_DICOM_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


# -- DICOM -------------------------------------------------------------------------------------
def read_dicom(path: str) -> np.ndarray:
    """Read a DICOM file into 8-bit greyscale ``H x W`` (or RGB ``H x W x 3``)."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError as exc:  # pragma: no cover - pydicom is a dependency
        raise InvalidInputError("reading DICOM needs pydicom: pip install pydicom") from exc
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as exc:
        raise InvalidInputError(
            f"could not read {path!r} as DICOM ({type(exc).__name__}: {exc}); the file is "
            "corrupt or not DICOM"
        ) from exc
    return dicom_to_grey(ds, path)


def dicom_to_grey(ds: Any, where: str = "DICOM dataset") -> np.ndarray:
    """Pixel data of a ``pydicom`` dataset as 8-bit display values (see the module doc)."""
    if "PixelData" not in ds:
        raise InvalidInputError(f"{where!r} has no pixel data (not an image: a report or SR?)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InvalidInputError(
            f"{where!r} holds {frames} frames; CXR-CLIP embeds single radiographs - pass one "
            "frame (e.g. ds.pixel_array[i] as an array, after your own windowing)"
        )
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises NotImplementedError/RuntimeError/ValueError...
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if getattr(syntax, "is_compressed", False):
            fix = ("compressed DICOM needs a decoder plugin (pip install pylibjpeg "
                   "pylibjpeg-libjpeg pylibjpeg-openjpeg) or decompress it first "
                   "(e.g. gdcmconv --raw)")
        else:
            fix = "the file is truncated or corrupt; export it again"
        raise InvalidInputError(
            f"could not decode the pixels of {where!r} (transfer syntax {syntax or 'unknown'}): "
            f"{exc}; {fix}"
        ) from exc
    if pixels.size == 0:
        raise InvalidInputError(f"{where!r} has an empty image")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 3 or (pixels.ndim == 3 and pixels.shape[-1] == 3):
        return pixels if pixels.dtype == np.uint8 else _to_uint8(stretch(pixels))
    if pixels.ndim != 2:
        raise InvalidInputError(f"{where!r}: unexpected pixel array shape {pixels.shape}")
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if "VOILUTSequence" in ds:  # a lookup table indexed by (integer) modality values
        integral = np.array_equal(values, np.round(values))
        lut_input = values.astype(np.int64) if integral else values
        shown = stretch(np.asarray(apply_voi_lut(lut_input, ds, index=0, prefer_lut=True),
                                   dtype=np.float64))
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), _first(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        shown = window(values, center, width, function)
    else:
        shown = stretch(values)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() == "MONOCHROME1":
        shown = 1.0 - shown  # MONOCHROME1: low values are bright; make bone bright
    return _to_uint8(shown)


def _first(value: Any) -> float:
    """The first value of a possibly multi-valued DICOM element."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = next(iter(value))
    return float(value)


def window(values: np.ndarray, center: float, width: float,
           function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI windowing (PS3.3 C.11.2.1.2) to display values in [0, 1].

    Args:
        values: modality values (after Rescale Slope / Intercept).
        center: Window Center.
        width: Window Width (>= 1 for LINEAR, > 0 otherwise).
        function: ``LINEAR`` (default), ``LINEAR_EXACT`` or ``SIGMOID``.
    """
    if function == "SIGMOID":
        if width <= 0:
            raise InvalidInputError(f"DICOM Window Width must be > 0, got {width}")
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise InvalidInputError(f"DICOM Window Width must be > 0, got {width}")
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if function != "LINEAR":
        raise InvalidInputError(f"unsupported DICOM VOI LUT Function {function!r}")
    if width < 1:
        raise InvalidInputError(f"DICOM Window Width must be >= 1 for LINEAR, got {width}")
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    out = ((values - (center - 0.5)) / max(width - 1, 1e-12)) + 0.5
    out = np.where(values <= low, 0.0, np.where(values > high, 1.0, out))
    return np.clip(out, 0.0, 1.0)


def stretch(values: np.ndarray) -> np.ndarray:
    """Linear min..max stretch to [0, 1] (a constant image becomes 0)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidInputError(
            "image contains NaN or inf values; replace them first (np.nan_to_num)"
        )
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def _grey_or_rgb(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).convert("RGB")
    return Image.fromarray(arr[:, :, :3])


# -- PIL images, arrays, tensors ---------------------------------------------------------------
class _RadiographReader(ImageReader):
    """textme-sdk's image reader with radiograph rules: DICOM files and datasets, and images
    wider than 8 bits stretched min..max (see the module doc)."""

    def read_file(self, path: str) -> Image.Image:
        check_input_file(path, self.thing, self.example_glob)
        if is_dicom_file(path):
            return _grey_or_rgb(read_dicom(path))
        return super().read_file(path)

    def wide_mode(self, img: Image.Image) -> Image.Image | None:
        if img.mode.startswith("I") or img.mode == "F":
            return _grey_or_rgb(_to_uint8(stretch(np.asarray(img))))
        return None

    def pixels_to_uint8(self, arr: np.ndarray) -> np.ndarray:
        return to_uint8(
            arr,
            range_hint="scale them (e.g. a window) or pass raw detector values as an integer "
                       "array to be stretched",
            integers=lambda a: _to_uint8(stretch(a)),
            dtype_hint="use uint8 (0..255), an integer type (stretched) or float (0..1)")

    def other(self, item: Any) -> Image.Image | None:
        pydicom = sys.modules.get("pydicom")  # a Dataset can only exist once pydicom is imported
        if pydicom is not None and isinstance(item, pydicom.Dataset):
            return _grey_or_rgb(dicom_to_grey(item))
        return None


_READER = _RadiographReader(
    "cxr_clip", "radiograph", example_glob="*.png", formats="PNG, JPEG or DICOM",
    accepted="a file path (PNG, JPEG, TIFF or DICOM), a PIL image, a pydicom Dataset, a numpy "
             "array (H x W or H x W x C) or a torch tensor (C x H x W)",
)
