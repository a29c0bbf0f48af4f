"""Plain helpers of the ``viclip`` plugin tests (a uniquely named module, so that importing it
never picks up another plugin's ``conftest``): a tiny ViCLIP config and tiny video files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The real ViCLIP-L/14 layout at toy sizes: 28 px frames in 2 x 2 patches of 14, 8 frames.
TINY_ARCH = {
    "embed_dim": 16, "image_size": 28, "patch_size": 14, "vision_width": 32,
    "vision_layers": 2, "vision_heads": 2, "text_width": 32, "text_layers": 2, "text_heads": 2,
}


def write_video(path: Path, frames: np.ndarray, codec: str = "mpeg4", fps: int = 10) -> Path:
    """Encode ``[T, H, W, 3]`` uint8 RGB frames to ``path`` with PyAV."""
    import av

    _, h, w, _ = frames.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def brightness_frames(n: int, size: int = 32) -> np.ndarray:
    """Frame ``i`` is uniformly grey at level ``10 * i`` (identifiable after lossy coding)."""
    levels = (10 * np.arange(n)).clip(0, 255).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, size, size, 3)).copy()


def moving_square(n: int, size: int = 32, colour=(220, 40, 40), seed: int = 0) -> np.ndarray:
    """A coloured square moving left to right over a noisy background."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(60, 120, (n, size, size, 3), dtype=np.uint8)
    side = size // 4
    for i in range(n):
        x = int((size - side) * i / max(n - 1, 1))
        frames[i, size // 2 - side // 2: size // 2 + side // 2, x:x + side] = colour
    return frames
