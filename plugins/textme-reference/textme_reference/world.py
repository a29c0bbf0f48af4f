"""The offline reference world: concepts that can be seen and heard, and the words for them.

Twenty-four everyday classes (``dog``, ``train``, ``bell``, ...) each have a visual signature
(shape + pattern, see :mod:`.images`) and a sound signature (timbre, envelope, glide,
modulation, register, see :mod:`.sounds`). Samples vary by attributes that captions name:
colour, size, position and background for images; pitch, repetitions and loudness for sounds.
Every function is deterministic given its ``seed``, and different ``split`` values draw from
independent random streams, so unpaired samples, evaluation items, pretraining pairs and
text-only corpora never share draws.

Typical use::

    from textme_reference import world
    unpaired = world.sample_items("image", 5000, seed=0)            # modal samples (Item.data)
    texts = world.caption_corpus("image", 100_000, seed=0)          # text-only descriptions
    test = world.sample_items("image", 1000, seed=0, split="eval")  # labelled, captioned
    prompts = [world.prompts_for("image", c) for c in world.class_names()]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from . import images, sounds
from .images import ImageAttributes, VisualSignature
from .sounds import SoundAttributes, SoundSignature

__all__ = [
    "CONCEPTS",
    "DISTRACTOR_RATE",
    "MODALITIES",
    "PROMPT_TEMPLATES",
    "Concept",
    "Item",
    "Modality",
    "Split",
    "caption_corpus",
    "caption_relevance",
    "class_names",
    "describe",
    "get_concept",
    "prompts_for",
    "sample_items",
    "split_words",
    "stack_data",
    "training_batch",
    "vocabulary",
]

Modality = Literal["image", "audio"]
Split = Literal["unpaired", "eval", "pretrain", "corpus"]
MODALITIES: tuple[str, ...] = ("image", "audio")
Attributes = ImageAttributes | SoundAttributes

_MODALITY_CODE = {"image": 1, "audio": 2}
_SPLIT_CODE = {"unpaired": 11, "eval": 23, "pretrain": 37, "corpus": 53}


@dataclass(frozen=True)
class Concept:
    """One class of the world: its name, words for it, and how it looks and sounds.

    Attributes:
        name: the class name, a common English noun (what zero-shot prompts use).
        synonyms: other nouns captions sometimes use instead.
        verb: the sound it makes, as (gerund, third person): ``("barking", "barks")``.
        visual: its :class:`~.images.VisualSignature`.
        sound: its :class:`~.sounds.SoundSignature`.
    """

    name: str
    synonyms: tuple[str, ...]
    verb: tuple[str, str]
    visual: VisualSignature
    sound: SoundSignature


def _concept(name: str, synonyms: tuple[str, ...], verb: tuple[str, str], shape: str,
             pattern: str, timbre: str, envelope: str, glide: str, modulation: str,
             base_hz: float) -> Concept:
    return Concept(name, synonyms, verb, VisualSignature(shape, pattern),
                   SoundSignature(timbre, envelope, glide, modulation, base_hz))


#: The classes of the world, in label order.
CONCEPTS: tuple[Concept, ...] = (
    _concept("dog", ("puppy",), ("barking", "barks"), "disk", "spots", "saw", "pluck", "down", "none", 350),
    _concept("cat", ("kitten",), ("meowing", "meows"), "triangle", "stripes", "odd", "sustain", "arch", "none", 600),
    _concept("bird", (), ("chirping", "chirps"), "triangle", "solid", "sine", "pluck", "up", "none", 1800),
    _concept("cow", (), ("mooing", "moos"), "square", "spots", "saw", "sustain", "flat", "none", 130),
    _concept("horse", ("pony",), ("neighing", "neighs"), "bar", "solid", "saw", "sustain", "arch", "vibrato", 450),
    _concept("sheep", (), ("bleating", "bleats"), "disk", "solid", "odd", "sustain", "flat", "tremolo", 300),
    _concept("frog", (), ("croaking", "croaks"), "diamond", "spots", "noise", "pluck", "flat", "tremolo", 400),
    _concept("duck", (), ("quacking", "quacks"), "crescent", "solid", "bright", "pluck", "flat", "none", 500),
    _concept("owl", (), ("hooting", "hoots"), "ring", "spots", "sine", "swell", "down", "none", 380),
    _concept("bee", (), ("buzzing", "buzzes"), "ring", "stripes", "saw", "sustain", "flat", "tremolo", 220),
    _concept("car", ("automobile",), ("honking", "honks"), "square", "solid", "bright", "sustain", "flat", "none", 400),
    _concept("train", ("locomotive",), ("whistling", "whistles"), "bar", "stripes", "sine", "sustain", "flat", "vibrato", 900),
    _concept("truck", ("lorry",), ("rumbling", "rumbles"), "square", "stripes", "noise", "sustain", "flat", "none", 120),
    _concept("motorcycle", ("motorbike",), ("revving", "revs"), "diamond", "stripes", "noise", "swell", "flat", "tremolo", 250),
    _concept("helicopter", (), ("whirring", "whirs"), "cross", "solid", "noise", "sustain", "flat", "tremolo", 180),
    _concept("guitar", (), ("strumming", "strums"), "crescent", "stripes", "saw", "pluck", "flat", "none", 250),
    _concept("drum", (), ("beating", "beats"), "disk", "stripes", "noise", "pluck", "flat", "none", 150),
    _concept("bell", (), ("ringing", "rings"), "triangle", "spots", "bell", "pluck", "flat", "none", 700),
    _concept("piano", (), ("playing", "plays"), "bar", "spots", "odd", "pluck", "flat", "none", 330),
    _concept("violin", (), ("playing", "plays"), "crescent", "spots", "saw", "swell", "flat", "vibrato", 500),
    _concept("trumpet", (), ("blaring", "blares"), "cross", "stripes", "bright", "swell", "flat", "none", 350),
    _concept("clock", (), ("ticking", "ticks"), "ring", "solid", "noise", "click", "flat", "none", 1500),
    _concept("phone", ("telephone",), ("ringing", "rings"), "diamond", "solid", "sine", "sustain", "flat", "tremolo", 1000),
    _concept("kettle", (), ("whistling", "whistles"), "cross", "spots", "sine", "swell", "up", "vibrato", 1400),
)

_BY_NAME = {c.name: i for i, c in enumerate(CONCEPTS)}

#: Zero-shot prompt templates per modality (``{}`` is the class name); every word is in the
#: modality's caption vocabulary.
PROMPT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "image": ("a photo of a {}", "a picture of a {}", "an image of a {}"),
    "audio": ("the sound of a {}", "a recording of a {}", "a {} sound"),
}

# -- caption language ------------------------------------------------------------------------
_IMAGE_TEMPLATES: tuple[str, ...] = (
    "a photo of a {cls}",
    "a photo of a {colour} {cls}",
    "a picture of a {cls}",
    "an image of a {cls}",
    "a {size} {colour} {cls} {bg}",
    "a {colour} {cls} {pos}",
    "a {size} {cls} {pos}, {bg}",
    "a picture of a {size} {colour} {cls} {pos} {bg}",
    "there is a {colour} {cls} {bg}",
    "an image of a {cls} {pos}",
    "a {cls} {bg}",
    "a {size} {cls} that is {colour}, {bg}",
    "this picture shows a {size} {colour} {cls} {pos}",
    "a {colour} {cls} {bg} {pos}",
    "a drawing of a {size} {cls}",
)
_SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}
_POSITION_PHRASES = {
    "left": ("on the left", "on the left side", "to the left"),
    "right": ("on the right", "on the right side", "to the right"),
    "top": ("at the top", "near the top", "in the upper part"),
    "bottom": ("at the bottom", "near the bottom", "in the lower part"),
    "center": ("in the center", "in the middle", "centered"),
}
_BACKGROUND_PHRASES = {
    "grass": ("on green grass", "on the grass", "in a grassy field"),
    "sky": ("against a blue sky", "in the sky", "with sky behind it"),
    "sand": ("on the sand", "on a sandy beach", "in the desert"),
    "snow": ("in the snow", "on white snow", "in a snowy field"),
    "water": ("on the water", "over blue water", "in a lake"),
    "night": ("at night", "in the dark", "against a night sky"),
}

_AUDIO_TEMPLATES: tuple[str, ...] = (
    "the sound of a {cls}",
    "a recording of a {cls}",
    "a {cls} sound",
    "a {cls} {ing} {reps}, {loud}",
    "a {cls} {ing} {reps}",
    "a {loud} {pitch} {cls} {ing}",
    "a {cls} {s} {loudly} {reps}",
    "a {pitch} {cls} sound repeated {reps}",
    "you can hear a {cls} {ing} {loudly}",
    "the {pitch} sound of a {cls}, {reps}",
    "a recording of a {cls} {ing}",
    "a {loud} {cls} noise, {pitch}, {reps}",
    "a {cls} {s} {reps} in a {pitch} tone",
    "someone recorded a {cls} {ing} {reps}, {pitch} and {loud}",
)
_PITCH_PHRASES = {
    "low": ("low-pitched", "deep", "low"),
    "medium": ("medium-pitched", "mid-pitched", "moderate"),
    "high": ("high-pitched", "shrill", "high"),
}
_REPETITION_PHRASES = {
    1: ("once", "one time", "a single time"),
    2: ("twice", "two times"),
    3: ("three times", "thrice"),
    4: ("four times", "four times in a row"),
}
_LOUD_ADJECTIVES = {"quiet": ("quiet", "soft", "faint"), "loud": ("loud", "noisy", "very loud")}
_LOUD_ADVERBS = {"quiet": ("quietly", "softly", "faintly"), "loud": ("loudly", "very loudly")}

_SYNONYM_RATE = 0.2
#: Share of samples that also show (or sound) a smaller object of another class, uncaptioned.
DISTRACTOR_RATE = 0.35
_WORD = re.compile(r"[a-z]+")
_ARTICLE = re.compile(r"\ba (?=[aeiou])")


@dataclass(eq=False)
class Item:
    """One generated sample with its ground truth.

    Attributes:
        modality: ``"image"`` or ``"audio"``.
        label: the class name (a key of :func:`class_names`).
        label_index: position of ``label`` in :func:`class_names`.
        attributes: :class:`~.images.ImageAttributes` or :class:`~.sounds.SoundAttributes`.
        data: the raw sample: ``uint8 [32, 32, 3]`` image or ``float32 [6000]`` waveform (8 kHz).
        caption: one natural description of this very sample.
        distractor: the class of an uncaptioned background object or sound, if any.
        stated: the attribute names the caption states (fields of ``attributes``, e.g.
            ``("pitch", "repetitions")``); the class is always stated.
    """

    modality: str
    label: str
    label_index: int
    attributes: Attributes
    data: np.ndarray = field(repr=False)
    caption: str
    distractor: str | None = None
    stated: tuple[str, ...] = ()


# -- public helpers --------------------------------------------------------------------------
def class_names() -> list[str]:
    """The class names in label order (24 common English nouns)."""
    return [c.name for c in CONCEPTS]


def get_concept(name: str) -> Concept:
    """The :class:`Concept` called ``name``."""
    if name not in _BY_NAME:
        raise KeyError(f"unknown class {name!r}; known: {', '.join(class_names())}")
    return CONCEPTS[_BY_NAME[name]]


def split_words(text: str) -> list[str]:
    """Lower-cased alphabetic words of ``text`` (the tokenisation the text towers use)."""
    return _WORD.findall(text.lower())


def prompts_for(modality: str, class_name: str) -> list[str]:
    """The zero-shot prompts of ``modality`` filled with ``class_name`` ("an image of an owl")."""
    return [_fix_articles(t.format(class_name)) for t in PROMPT_TEMPLATES[_check(modality)]]


def sample_items(modality: str, n: int, seed: int = 0, split: Split = "unpaired") -> list[Item]:
    """Generate ``n`` labelled, captioned samples of ``modality``.

    Classes and attributes are drawn uniformly. Each ``split`` is an independent stream:
    use ``"unpaired"`` for the modal samples of TextME's offsets (ignore ``Item.caption``
    there), ``"eval"`` for held-out evaluation; ``"pretrain"`` is what the reference encoders
    were trained on. The first ``k`` items do not depend on ``n``.
    """
    return _generate(modality, n, _rng(modality, split, seed))


def training_batch(modality: str, n: int, seed: int, step: int) -> list[Item]:
    """The ``n`` captioned pairs of pretraining step ``step`` (an independent stream per step)."""
    return _generate(modality, n, _rng(modality, "pretrain", seed, step))


def caption_corpus(modality: str, n: int, seed: int = 0) -> list[str]:
    """``n`` text-only descriptions of the modality's domain (no sample is rendered).

    Class and attributes are drawn as in :func:`sample_items`, from the independent
    ``"corpus"`` stream, and described with the same caption generator.
    """
    modality = _check(modality)
    rng = _rng(modality, "corpus", seed)
    return [_describe(modality, *_draw_concept_attrs(modality, rng), rng) for _ in range(n)]


def describe(item: Item, rng: np.random.Generator) -> str:
    """A fresh natural description of ``item`` (template, wording and detail vary with ``rng``)."""
    return _describe(item.modality, CONCEPTS[item.label_index], item.attributes, rng)


def caption_relevance(queries: Sequence[Item], items: Sequence[Item]) -> np.ndarray:
    """Which items each query's caption truly describes: ``bool [len(queries), len(items)]``.

    ``items[j]`` is relevant to the caption of ``queries[i]`` when it shows (or sounds) the same
    class and agrees on every attribute that caption states (:attr:`Item.stated`); attributes
    the caption leaves out may take any value. "the sound of a dog" is thus relevant to every
    dog clip, "a dog barking twice, loud" only to loud two-bark dog clips. A query is always
    relevant to itself.
    """
    labels = np.array([it.label_index for it in items])
    columns: dict[str, np.ndarray] = {}  # each stated attribute's values over the items, once
    out = np.empty((len(queries), len(items)), dtype=bool)
    for i, q in enumerate(queries):
        row = labels == q.label_index
        for name in q.stated:
            if name not in columns:
                columns[name] = np.array([getattr(it.attributes, name) for it in items])
            row &= columns[name] == getattr(q.attributes, name)
        out[i] = row
    return out


def stack_data(items: Sequence[Item]) -> np.ndarray:
    """The items' raw data stacked into one array ``[N, ...]``."""
    return np.stack([it.data for it in items])


def vocabulary(modality: str) -> list[str]:
    """Every word the caption generator and prompts of ``modality`` can produce, sorted."""
    modality = _check(modality)
    texts: list[str] = list(PROMPT_TEMPLATES[modality])
    for c in CONCEPTS:
        texts += [c.name, *c.synonyms]
        if modality == "audio":
            texts += list(c.verb)
    tables: tuple = ((_IMAGE_TEMPLATES, _SIZE_WORDS, _POSITION_PHRASES, _BACKGROUND_PHRASES,
                      {k: (k,) for k in images.COLOURS}) if modality == "image" else
                     (_AUDIO_TEMPLATES, _PITCH_PHRASES, _REPETITION_PHRASES, _LOUD_ADJECTIVES,
                      _LOUD_ADVERBS))
    texts += [re.sub(r"\{\w+\}", " ", t) for t in tables[0]]
    for table in tables[1:]:
        texts += [p for phrases in table.values() for p in phrases]
    texts.append("an")  # produced by article correction
    return sorted({w for t in texts for w in split_words(t)})


# -- generation ------------------------------------------------------------------------------
def _check(modality: str) -> str:
    if modality not in _MODALITY_CODE:
        raise ValueError(f"unknown modality {modality!r}; the reference world has {MODALITIES}")
    return modality


def _rng(modality: str, split: str, seed: int, *extra: int) -> np.random.Generator:
    """An independent generator per (seed, split, modality, extra keys)."""
    if split not in _SPLIT_CODE:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(_SPLIT_CODE)}")
    entropy = [int(seed), _SPLIT_CODE[split], _MODALITY_CODE[_check(modality)], *map(int, extra)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _draw_concept_attrs(modality: str, rng: np.random.Generator) -> tuple[Concept, Attributes]:
    concept = CONCEPTS[int(rng.integers(len(CONCEPTS)))]
    if modality == "image":
        return concept, images.sample_image_attributes(rng)
    return concept, sounds.sample_sound_attributes(rng)


def _draw_distractor(concept: Concept, rng: np.random.Generator) -> Concept | None:
    if rng.random() >= DISTRACTOR_RATE:
        return None
    others = [c for c in CONCEPTS if c is not concept]
    return others[int(rng.integers(len(others)))]


def _render(modality: str, concept: Concept, attrs: Attributes, distractor: Concept | None,
            rng: np.random.Generator) -> np.ndarray:
    if modality == "image":
        assert isinstance(attrs, ImageAttributes)
        return images.render_image(concept.visual, attrs, rng,
                                   distractor=distractor.visual if distractor else None)
    assert isinstance(attrs, SoundAttributes)
    return sounds.synthesise(concept.sound, attrs, rng,
                             distractor=distractor.sound if distractor else None)


def _generate(modality: str, n: int, rng: np.random.Generator) -> list[Item]:
    """``n`` items drawn in order from ``rng``."""
    modality = _check(modality)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out: list[Item] = []
    for _ in range(n):
        concept, attrs = _draw_concept_attrs(modality, rng)
        distractor = _draw_distractor(concept, rng)
        data = _render(modality, concept, attrs, distractor, rng)
        caption, stated = _describe_stated(modality, concept, attrs, rng)
        out.append(Item(modality, concept.name, _BY_NAME[concept.name], attrs, data, caption,
                        distractor.name if distractor else None, stated))
    return out


# -- captions --------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _fix_articles(text: str) -> str:
    return _ARTICLE.sub("an ", text)


def _class_word(concept: Concept, rng: np.random.Generator) -> str:
    if concept.synonyms and rng.random() < _SYNONYM_RATE:
        return _pick(rng, concept.synonyms)
    return concept.name


def _image_slots(attrs: ImageAttributes, rng: np.random.Generator) -> dict[str, str]:
    return {
        "colour": attrs.colour,
        "size": _pick(rng, _SIZE_WORDS[attrs.size]),
        "pos": _pick(rng, _POSITION_PHRASES[attrs.position]),
        "bg": _pick(rng, _BACKGROUND_PHRASES[attrs.background]),
    }


def _audio_slots(concept: Concept, attrs: SoundAttributes,
                 rng: np.random.Generator) -> dict[str, str]:
    return {
        "ing": concept.verb[0],
        "s": concept.verb[1],
        "pitch": _pick(rng, _PITCH_PHRASES[attrs.pitch]),
        "reps": _pick(rng, _REPETITION_PHRASES[attrs.repetitions]),
        "loud": _pick(rng, _LOUD_ADJECTIVES[attrs.loudness]),
        "loudly": _pick(rng, _LOUD_ADVERBS[attrs.loudness]),
    }


#: Which attribute field each caption slot states (verbs and the class word state only the class).
_SLOT_ATTRIBUTE = {"colour": "colour", "size": "size", "pos": "position", "bg": "background",
                   "pitch": "pitch", "reps": "repetitions", "loud": "loudness", "loudly": "loudness"}
_SLOT = re.compile(r"\{(\w+)\}")


def _describe_stated(modality: str, concept: Concept, attrs: Attributes,
                     rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
    """Fill a random template of the modality with randomly worded attribute phrases.

    Returns the caption and the attribute fields it states, in field order.
    """
    if modality == "image":
        assert isinstance(attrs, ImageAttributes)
        slots, templates = _image_slots(attrs, rng), _IMAGE_TEMPLATES
    else:
        assert isinstance(attrs, SoundAttributes)
        slots, templates = _audio_slots(concept, attrs, rng), _AUDIO_TEMPLATES
    slots["cls"] = _class_word(concept, rng)
    template = _pick(rng, templates)
    named = {_SLOT_ATTRIBUTE[s] for s in _SLOT.findall(template) if s in _SLOT_ATTRIBUTE}
    stated = tuple(f for f in type(attrs).__dataclass_fields__ if f in named)
    return _fix_articles(template.format(**slots)), stated


def _describe(modality: str, concept: Concept, attrs: Attributes,
              rng: np.random.Generator) -> str:
    """Fill a random template of the modality with randomly worded attribute phrases."""
    return _describe_stated(modality, concept, attrs, rng)[0]
