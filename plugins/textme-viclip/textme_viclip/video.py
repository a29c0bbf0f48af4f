"""Video inputs -> ViCLIP's input tensor, exactly as upstream prepares clips.

Upstream (``Data/InternVid/viclip/__init__.py`` and ``demo.ipynb``) reads *every* frame with
OpenCV, then ``frames2tensor``:

1. ``step = len(frames) // 8``; keeps ``frames[::step][:8]`` -> frames ``0, step, ..., 7 step``
   (and asserts there are at least 8 frames);
2. flips OpenCV's BGR to RGB and resizes each frame to 224 x 224 with ``cv2.resize`` (bilinear,
   ``INTER_LINEAR``, no antialiasing, aspect ratio not kept; the result is uint8 again);
3. scales to ``[0, 1]`` and normalises with the ImageNet mean ``(0.485, 0.456, 0.406)`` and std
   ``(0.229, 0.224, 0.225)`` in RGB order (not CLIP's mean/std);
4. stacks to ``[1, 8, 3, 224, 224]``.

Here files are decoded with PyAV (FFmpeg) straight to RGB, the resize is torch's bilinear
interpolation with half-pixel centres (OpenCV's ``INTER_LINEAR`` geometry) rounded back to
uint8 as OpenCV does (OpenCV's fixed-point arithmetic can differ by one grey level), and the
rest is identical. Frames passed in memory must be RGB: convert OpenCV frames with
``frame[..., ::-1]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from textme_sdk.encoders import check_input_file
from textme_sdk.errors import InvalidInputError
from textme_sdk.images import to_uint8

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VIDEO_EXTENSIONS",
    "clip_tensor",
    "frames_to_tensor",
    "read_video",
    "sample_indices",
    "to_frames",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif",
    ".3gp", ".ts",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sample_indices(n_frames: int, num_frames: int = 8) -> list[int]:
    """Upstream's frame choice: ``range(n)[::n // num_frames][:num_frames]``.

    Raises:
        InvalidInputError: fewer than ``num_frames`` frames (upstream asserts the same).
    """
    if n_frames < num_frames:
        raise InvalidInputError(
            f"the clip has {n_frames} frame(s) but ViCLIP samples {num_frames} (upstream "
            f"requires at least {num_frames}); use a longer clip or repeat frames yourself, "
            f"e.g. frames[np.linspace(0, len(frames) - 1, {num_frames}).round().astype(int)]"
        )
    step = n_frames // num_frames
    return list(range(0, n_frames, step))[:num_frames]


# -- files ---------------------------------------------------------------------------------
def read_video(path: str, num_frames: int = 8) -> np.ndarray:
    """Decode a video file and return upstream's sampled frames as ``[num_frames, H, W, 3]``
    uint8 RGB.

    Frames are counted by decoding (as upstream's OpenCV loop does, not from the container's
    possibly wrong frame count). When the container states a frame count, one decoding pass
    keeps the frames that count implies and is confirmed by the real count; otherwise (or when
    the count was wrong) a second pass collects the right frames. Only the sampled frames are
    ever converted to RGB and held in memory.

    Raises:
        MissingInputFileError: no file at ``path``.
        InvalidInputError: a folder, a file FFmpeg cannot decode, no video stream, or fewer
            than ``num_frames`` frames.
    """
    check_input_file(path, "video", "*.mp4")
    hint = _stated_frame_count(path)
    if hint >= num_frames:
        wanted = sample_indices(hint, num_frames)
        frames, total = _decode(path, set(wanted))
        if total == hint:
            return np.stack([frames[i] for i in wanted])
    else:
        _, total = _decode(path, set())
    try:
        wanted = sample_indices(total, num_frames)
    except InvalidInputError as exc:
        raise InvalidInputError(f"video {path!r}: {exc}") from None
    frames, total_again = _decode(path, set(wanted))
    if total_again != total or any(i not in frames for i in wanted):
        raise InvalidInputError(
            f"video {path!r} decoded to a different number of frames on a second pass "
            f"({total} then {total_again}); the file is damaged - re-encode it, e.g. "
            "ffmpeg -i in.mp4 -c:v libx264 out.mp4"
        )
    return np.stack([frames[i] for i in wanted])


def _open(path: str) -> Any:
    import av

    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"could not open video {path!r} ({type(exc).__name__}: {exc}); the file is corrupt "
            "or not a video FFmpeg can read - re-encode it, e.g. ffmpeg -i in -c:v libx264 "
            "out.mp4"
        ) from exc
    if not container.streams.video:
        container.close()
        raise InvalidInputError(
            f"{path!r} has no video stream (audio or data only?); pass a video file"
        )
    return container


def _stated_frame_count(path: str) -> int:
    container = _open(path)
    try:
        return int(container.streams.video[0].frames or 0)
    finally:
        container.close()


def _decode(path: str, keep: set[int]) -> tuple[dict[int, np.ndarray], int]:
    """Decode the first video stream; return ``{index: RGB frame}`` for ``keep`` and the count."""
    import av

    container = _open(path)
    kept: dict[int, np.ndarray] = {}
    count = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if count in keep:
                kept[count] = frame.to_ndarray(format="rgb24")
            count += 1
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        if count == 0:
            raise InvalidInputError(
                f"could not decode video {path!r} ({type(exc).__name__}: {exc}); the file is "
                "corrupt or truncated - re-encode it, e.g. ffmpeg -i in -c:v libx264 out.mp4"
            ) from exc
        # A damaged tail: like OpenCV's read loop, stop at the first frame that fails.
    finally:
        container.close()
    if count == 0:
        raise InvalidInputError(
            f"video {path!r} contains no decodable frames; the file is empty or corrupt"
        )
    return kept, count


# -- in-memory frames ----------------------------------------------------------------------
def to_frames(item: Any, num_frames: int = 8) -> np.ndarray:
    """Turn one video input into upstream's sampled frames, ``[num_frames, H, W, 3]`` uint8 RGB.

    Accepts a file path, a numpy array ``[T, H, W, 3]``, a torch tensor ``[T, H, W, 3]`` or
    ``[T, 3, H, W]``, or a list/tuple of frames (``H x W x 3`` arrays or PIL images); uint8
    0..255 or float 0..1. Frame sampling is upstream's (see :func:`sample_indices`).

    Raises:
        InvalidInputError: unknown type, wrong shape or channel count, bad values, too few
            frames, or an unreadable file.
    """
    if isinstance(item, (str, os.PathLike)):
        return read_video(os.fspath(item), num_frames)
    if isinstance(item, torch.Tensor):
        arr = _tensor_to_thwc(item)
    elif isinstance(item, np.ndarray):
        arr = _check_thwc(item, "numpy array")
    elif isinstance(item, (list, tuple)):
        arr = _frame_list(item)
    else:
        raise InvalidInputError(
            f"viclip cannot read a video from a {type(item).__name__}; pass a video file path, "
            "a numpy array [T, H, W, 3], a torch tensor [T, H, W, 3] or [T, 3, H, W], or a list "
            "of RGB frames"
        )
    idx = sample_indices(arr.shape[0], num_frames)
    return np.ascontiguousarray(to_uint8(arr[idx], thing="frame"))


def _check_thwc(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 4 and arr.shape[-1] == 3:
        if 0 in arr.shape:
            raise InvalidInputError(f"video {what} has zero size (shape {tuple(arr.shape)})")
        return arr
    if arr.ndim == 3 and arr.shape[-1] == 3:
        hint = ("; that looks like one image - ViCLIP needs a clip of frames "
                "[T, H, W, 3] (stack frames with np.stack)")
    elif arr.ndim == 5:
        hint = "; a batch of videos? pass a list of videos instead, e.g. list(batch)"
    elif arr.ndim == 4:
        hint = ("; frames must be RGB with 3 channels last (convert greyscale with "
                "np.repeat(x[..., None], 3, -1); drop alpha with x[..., :3])")
    else:
        hint = ""
    raise InvalidInputError(
        f"viclip expects one video per {what} laid out [T, H, W, 3] (RGB); got shape "
        f"{tuple(arr.shape)}{hint}"
    )


def _tensor_to_thwc(tensor: torch.Tensor) -> np.ndarray:
    t = tensor.detach().cpu()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    if t.ndim == 4 and t.shape[-1] != 3 and t.shape[1] == 3:
        t = t.permute(0, 2, 3, 1)  # [T, 3, H, W] -> [T, H, W, 3]
    return _check_thwc(t.numpy(), "tensor")


def _frame_list(frames: Sequence[Any]) -> np.ndarray:
    if not frames:
        raise InvalidInputError("a video given as a list of frames has no frames")
    arrays = []
    for i, frame in enumerate(frames):
        if hasattr(frame, "convert") and hasattr(frame, "size"):  # a PIL image
            frame = np.asarray(frame.convert("RGB"))
        elif isinstance(frame, torch.Tensor):
            frame = frame.detach().cpu().numpy()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3:
            shape = getattr(frame, "shape", None)
            raise InvalidInputError(
                f"frame {i} of a video given as a list must be an H x W x 3 RGB array or a PIL "
                f"image; got {type(frame).__name__}" + (f" of shape {tuple(shape)}" if shape
                                                        is not None else "")
            )
        arrays.append(frame)
    if len({a.shape for a in arrays}) > 1:
        raise InvalidInputError(
            f"frames of one video differ in size ({sorted({a.shape for a in arrays})}); resize "
            "them to one size first"
        )
    return np.stack(arrays)


# -- tensor --------------------------------------------------------------------------------
def frames_to_tensor(frames: np.ndarray, size: int = 224) -> torch.Tensor:
    """``[T, H, W, 3]`` uint8 RGB -> ``[T, 3, size, size]`` float32, resized and normalised as
    upstream's ``frames2tensor`` (bilinear to uint8, ``/255``, ImageNet mean/std)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            align_corners=False, antialias=False)
        # OpenCV returns uint8 for uint8 input, rounding halves up (fixed-point arithmetic)
        x = x.add_(0.5).floor_().clamp_(0, 255)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def clip_tensor(item: Any, num_frames: int = 8, size: int = 224) -> torch.Tensor:
    """One video input -> ``[num_frames, 3, size, size]`` normalised float32."""
    return frames_to_tensor(to_frames(item, num_frames), size)
