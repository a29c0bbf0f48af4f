"""Prompt templates for zero-shot classification, one set per domain.

Each template holds exactly one ``{}``, filled with a class name; the embeddings of a class's
prompts are averaged and re-normalised (:func:`textme_sdk.evaluation.class_prototypes`).

The sets follow the conventions of the encoders' own papers: CLIP-style photo prompts for images,
LAION-CLAP's "this is a sound of {}." for audio, the point-cloud prompts of ULIP / Uni3D
(``templates.json``, ``modelnet40_64``: "a point cloud model of {}." first) for 3D, chest X-ray
finding prompts for radiographs (class names ``normal`` / ``pneumonia`` for RSNA), and plain
property sentences for molecules.
"""

from __future__ import annotations

from types import MappingProxyType

from ..errors import InvalidInputError

__all__ = ["TEMPLATES", "DOMAINS", "get_templates"]

_IMAGE = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a cropped photo of the {}.",
    "a good photo of the {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "itap of a {}.",
)

_VIDEO = (
    "a video of {}.",
    "a video of a {}.",
    "a video clip of {}.",
    "a short clip showing {}.",
    "footage of {}.",
    "a person is {}.",
)

_AUDIO = (
    "this is a sound of {}.",
    "the sound of {}.",
    "a sound of a {}.",
    "a recording of {}.",
    "an audio clip of {}.",
    "{} can be heard.",
)

_3D = (
    "a point cloud model of {}.",
    "There is a {} in the scene.",
    "There is the {} in the scene.",
    "a photo of a {} in the scene.",
    "a photo of one {} in the scene.",
    "a 3D model of a {}.",
    "a photo of a {}.",
    "a toy {}.",
    "a plastic {}.",
    "a cartoon {}.",
)

_XRAY = (
    "a chest x-ray showing {}.",
    "chest x-ray showing {}.",
    "a chest radiograph with findings of {}.",
    "findings: {}.",
    "impression: {}.",
)

_MOLECULE = (
    "{}",
    "This molecule is {}.",
    "The molecule is {}.",
    "a molecule that is {}.",
)

TEMPLATES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "image": _IMAGE,
    "video": _VIDEO,
    "audio": _AUDIO,
    "3d": _3D,
    "xray": _XRAY,
    "molecule": _MOLECULE,
})
"""Read-only mapping domain -> templates."""

DOMAINS: tuple[str, ...] = tuple(TEMPLATES)
"""The domains that have templates."""


def get_templates(domain: str) -> list[str]:
    """The zero-shot prompt templates of a domain.

    Args:
        domain: one of :data:`DOMAINS` (``"image"``, ``"video"``, ``"audio"``, ``"3d"``,
            ``"xray"``, ``"molecule"``).

    Returns:
        A new list of templates, each with exactly one ``{}`` for the class name.

    Raises:
        InvalidInputError: ``domain`` has no templates.

    Example:
        >>> get_templates("audio")[0]
        'this is a sound of {}.'
    """
    try:
        return list(TEMPLATES[domain])
    except (KeyError, TypeError):
        raise InvalidInputError(
            f"no prompt templates for domain {domain!r}; known domains: {', '.join(DOMAINS)}"
        ) from None
