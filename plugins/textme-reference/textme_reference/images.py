"""Procedural images of the reference world: small RGB pictures of one object on a background.

Every class has a :class:`VisualSignature` (a shape and a surface pattern); an image also
carries four attributes that captions talk about: the object's colour, its size, its position
and the background. Rendering is plain numpy on a 32 x 32 grid, about ten thousand images a
second on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "IMAGE_SIZE",
    "PATTERNS",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "ImageAttributes",
    "VisualSignature",
    "render_image",
    "sample_image_attributes",
]

#: Height and width of every image, in pixels.
IMAGE_SIZE = 32

#: Object colours (name -> RGB).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (205, 35, 35),
    "orange": (240, 135, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 215),
    "purple": (130, 45, 175),
    "pink": (240, 130, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "brown": (120, 75, 35),
}

#: Object radius range in pixels per size word.
SIZES: dict[str, tuple[float, float]] = {"small": (4.5, 6.0), "large": (8.5, 10.5)}

#: Unit direction of the object's centre from the image centre, per position word.
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "top": (0.0, -1.0),
    "bottom": (0.0, 1.0),
    "center": (0.0, 0.0),
}

#: Background base colours (name -> RGB); each also has its own texture.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "grass": (70, 135, 55),
    "sky": (125, 180, 235),
    "sand": (210, 188, 135),
    "snow": (232, 236, 244),
    "water": (35, 85, 150),
    "night": (15, 15, 40),
}

_COORD = np.arange(IMAGE_SIZE, dtype=np.float32)
_YY, _XX = np.meshgrid(_COORD, _COORD, indexing="ij")

Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _disk(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= 0.8


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (v <= 0.75) & (v >= 2.0 * np.abs(u) - 1.0)


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) + np.abs(v) <= 1.0


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.33) & (av <= 1.0)) | ((av <= 0.33) & (au <= 1.0))


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.36)


def _bar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.4)


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u * u + v * v <= 1.0) & ((u - 0.55) ** 2 + v * v > 0.6)


#: Shape masks over object-centred coordinates scaled by the radius.
SHAPES: dict[str, Mask] = {
    "disk": _disk,
    "square": _square,
    "triangle": _triangle,
    "diamond": _diamond,
    "cross": _cross,
    "ring": _ring,
    "bar": _bar,
    "crescent": _crescent,
}


def _solid(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.zeros(u.shape, dtype=bool)


def _stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.floor((v + 2.0) * 2.5).astype(np.int64) % 2 == 1


def _spots(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.sin(u * 7.0) * np.sin(v * 7.0) > 0.35


#: Surface patterns: where the object shows its secondary (contrasting) shade.
PATTERNS: dict[str, Mask] = {"solid": _solid, "stripes": _stripes, "spots": _spots}


@dataclass(frozen=True)
class VisualSignature:
    """What makes a class recognisable in a picture: a shape and a surface pattern."""

    shape: str
    pattern: str

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or self.pattern not in PATTERNS:
            raise ValueError(f"unknown shape/pattern in {self}")


@dataclass(frozen=True)
class ImageAttributes:
    """The varying properties of one picture, each named by a caption word."""

    colour: str
    size: str
    position: str
    background: str


def sample_image_attributes(rng: np.random.Generator) -> ImageAttributes:
    """Draw colour, size, position and background uniformly."""
    return ImageAttributes(
        colour=_choice(rng, COLOURS),
        size=_choice(rng, SIZES),
        position=_choice(rng, POSITIONS),
        background=_choice(rng, BACKGROUNDS),
    )


def _choice(rng: np.random.Generator, options: dict) -> str:
    keys = list(options)
    return keys[int(rng.integers(len(keys)))]


def _background(name: str, rng: np.random.Generator) -> np.ndarray:
    """A textured background ``[H, W, 3]`` float32 in 0..255."""
    base = np.asarray(BACKGROUNDS[name], dtype=np.float32)
    img = np.broadcast_to(base, (IMAGE_SIZE, IMAGE_SIZE, 3)).copy()
    if name == "grass":
        img += rng.normal(0.0, 14.0, (1, IMAGE_SIZE, 1)).astype(np.float32) * np.float32([0.4, 1, 0.3])
    elif name == "sky":
        img += (_YY[..., None] / IMAGE_SIZE - 0.5) * np.float32([50, 40, 15])
    elif name == "water":
        phase = rng.uniform(0, 2 * np.pi)
        img += (np.sin(_YY * 0.9 + phase) * 14.0)[..., None] * np.float32([0.4, 0.7, 1.0])
    elif name == "night":
        stars = rng.random((IMAGE_SIZE, IMAGE_SIZE)) < 0.02
        img[stars] = 220.0
    return img


def _secondary(rgb: np.ndarray) -> np.ndarray:
    """The contrasting shade of a colour used by stripes and spots."""
    if rgb.mean() > 110:
        return rgb * 0.35
    return rgb + (255.0 - rgb) * 0.6


def _frame(cx: float, cy: float, radius: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to an object's centre, scaled by its radius and rotated."""
    cos, sin = np.cos(angle), np.sin(angle)
    x, y = (_XX - cx) / radius, (_YY - cy) / radius
    return cos * x + sin * y, -sin * x + cos * y


def _object_frame(attrs: ImageAttributes, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The main object's frame: size and position from ``attrs``, slightly jittered."""
    lo, hi = SIZES[attrs.size]
    radius = rng.uniform(lo, hi)
    dx, dy = POSITIONS[attrs.position]
    reach = IMAGE_SIZE / 2 - radius - 1.0
    centre = (IMAGE_SIZE - 1) / 2
    cx = centre + dx * reach + rng.uniform(-1.5, 1.5)
    cy = centre + dy * reach + rng.uniform(-1.5, 1.5)
    return _frame(cx, cy, radius, rng.uniform(-0.3, 0.3))


def _distractor_frame(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A small background object anywhere in the picture."""
    cx, cy = rng.uniform(3.0, IMAGE_SIZE - 4.0, 2)
    return _frame(cx, cy, rng.uniform(2.5, 4.0), rng.uniform(-0.3, 0.3))


def _paint(img: np.ndarray, signature: VisualSignature, frame: tuple[np.ndarray, np.ndarray],
           rgb: np.ndarray) -> None:
    """Draw an object of ``signature`` in colour ``rgb`` (pattern in the contrasting shade)."""
    mask = SHAPES[signature.shape](*frame)
    img[mask] = rgb
    img[PATTERNS[signature.pattern](*frame) & mask] = _secondary(rgb)


def _jittered(colour: str, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(COLOURS[colour], dtype=np.float32) + rng.uniform(-18, 18, 3).astype(np.float32)


def render_image(
    signature: VisualSignature, attrs: ImageAttributes, rng: np.random.Generator,
    noise: float = 10.0, distractor: VisualSignature | None = None,
) -> np.ndarray:
    """Draw one picture: ``uint8 [IMAGE_SIZE, IMAGE_SIZE, 3]`` (HWC, RGB).

    Args:
        signature: the class's shape and pattern.
        attrs: colour, size, position and background.
        rng: the source of jitter (position, radius, rotation, shade, texture, noise).
        noise: standard deviation of the per-pixel Gaussian noise, in 0..255 units.
        distractor: another class drawn small, in a random colour and place, behind the main
            object (captions never mention it, as alt-texts skip background clutter).
    """
    img = _background(attrs.background, rng)
    if distractor is not None:
        _paint(img, distractor, _distractor_frame(rng), _jittered(_choice(rng, COLOURS), rng))
    _paint(img, signature, _object_frame(attrs, rng), _jittered(attrs.colour, rng))
    img *= np.float32(rng.uniform(0.88, 1.12))
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(img, 0, 255).astype(np.uint8)
