"""The reference world: determinism, captions, samples."""

from __future__ import annotations

import re

import numpy as np
import pytest

from textme_reference import images, sounds, world


def test_classes_are_distinct_english_words():
    names = world.class_names()
    assert 24 <= len(names) <= 32
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z]+", n) for n in names)
    assert world.get_concept("dog").name == "dog"
    with pytest.raises(KeyError, match="unknown class"):
        world.get_concept("unicorn")


def test_every_class_has_a_unique_look_and_sound():
    looks = {c.visual for c in world.CONCEPTS}
    sounds_ = {(c.sound.timbre, c.sound.envelope, c.sound.glide, c.sound.modulation)
               for c in world.CONCEPTS}
    assert len(looks) == len(sounds_) == len(world.CONCEPTS)


@pytest.mark.parametrize("modality", world.MODALITIES)
def test_samples_are_deterministic_and_prefix_stable(modality):
    a = world.sample_items(modality, 12, seed=3)
    b = world.sample_items(modality, 12, seed=3)
    short = world.sample_items(modality, 5, seed=3)
    for x, y in zip(a, b):
        assert x.label == y.label and x.attributes == y.attributes and x.caption == y.caption
        np.testing.assert_array_equal(x.data, y.data)
    for x, y in zip(a, short):
        np.testing.assert_array_equal(x.data, y.data)
    other = world.sample_items(modality, 12, seed=4)
    assert any(not np.array_equal(x.data, y.data) for x, y in zip(a, other))


@pytest.mark.parametrize("modality", world.MODALITIES)
def test_splits_are_independent_streams(modality):
    unpaired = world.sample_items(modality, 8, seed=0)
    held_out = world.sample_items(modality, 8, seed=0, split="eval")
    assert all(not np.array_equal(x.data, y.data) for x, y in zip(unpaired, held_out))
    with pytest.raises(ValueError, match="unknown split"):
        world.sample_items(modality, 1, split="test")  # type: ignore[arg-type]


def test_image_shapes_and_dtypes():
    items = world.sample_items("image", 20, seed=0)
    batch = world.stack_data(items)
    assert batch.shape == (20, images.IMAGE_SIZE, images.IMAGE_SIZE, 3)
    assert batch.dtype == np.uint8
    assert all(isinstance(it.attributes, images.ImageAttributes) for it in items)
    assert batch.std() > 20  # not blank


def test_sound_shapes_and_dtypes():
    items = world.sample_items("audio", 20, seed=0)
    batch = world.stack_data(items)
    assert batch.shape == (20, sounds.NUM_SAMPLES)
    assert batch.dtype == np.float32
    assert np.abs(batch).max() <= 1.0
    peaks = {it.attributes.loudness: np.abs(it.data).max() for it in items}
    if len(peaks) == 2:
        assert peaks["loud"] > peaks["quiet"]


def test_loud_clips_are_louder_and_repetitions_are_counted():
    concept = world.get_concept("bell")
    rng = np.random.default_rng(0)
    quiet = sounds.synthesise(concept.sound, sounds.SoundAttributes("medium", 1, "quiet"), rng)
    loud = sounds.synthesise(concept.sound, sounds.SoundAttributes("medium", 3, "loud"), rng)
    assert np.abs(loud).max() > 2 * np.abs(quiet).max()
    envelope = np.abs(loud).reshape(30, -1).max(axis=1) > 0.3
    onsets = int(np.sum(envelope[1:] & ~envelope[:-1]) + envelope[0])
    assert onsets == 3


@pytest.mark.parametrize("modality", world.MODALITIES)
def test_caption_corpus_is_varied_deterministic_and_in_vocabulary(modality):
    texts = world.caption_corpus(modality, 600, seed=0)
    assert texts == world.caption_corpus(modality, 600, seed=0)
    assert texts != world.caption_corpus(modality, 600, seed=1)
    assert len(set(texts)) > 300
    vocab = set(world.vocabulary(modality))
    assert {w for t in texts for w in world.split_words(t)} <= vocab
    for name in world.class_names():
        assert any(name in world.split_words(t) for t in texts)


def test_captions_tell_the_truth():
    for it in world.sample_items("image", 200, seed=1):
        words = world.split_words(it.caption)
        concept = world.get_concept(it.label)
        assert {concept.name, *concept.synonyms} & set(words)
        mentioned = set(words) & set(images.COLOURS) - {"green", "blue", "white"}  # grass, sky
        assert mentioned <= {it.attributes.colour}
    for it in world.sample_items("audio", 200, seed=1):
        words = world.split_words(it.caption)
        said_loud = {"loud", "loudly", "noisy"} & set(words)
        said_quiet = {"quiet", "quietly", "soft", "softly", "faint", "faintly"} & set(words)
        assert not (said_loud and it.attributes.loudness == "quiet")
        assert not (said_quiet and it.attributes.loudness == "loud")


def _says(caption: str, phrases) -> bool:
    return any(re.search(rf"\b{re.escape(p)}\b", caption) for p in phrases)


def test_stated_attributes_are_exactly_those_the_caption_names():
    tables = {
        "pitch": world._PITCH_PHRASES,
        "repetitions": world._REPETITION_PHRASES,
        "loudness": {k: world._LOUD_ADJECTIVES[k] + world._LOUD_ADVERBS[k] for k in world._LOUD_ADJECTIVES},
        "size": world._SIZE_WORDS, "position": world._POSITION_PHRASES,
        "background": world._BACKGROUND_PHRASES,
    }
    seen = set()
    for modality in ("image", "audio"):
        for it in world.sample_items(modality, 300, seed=2, split="eval"):
            seen.add(it.stated)
            caption = it.caption
            for name in ("background", "size", "position", "pitch", "repetitions", "loudness"):
                if not hasattr(it.attributes, name):
                    continue
                phrases = [p for v in tables[name].values() for p in v]
                assert (name in it.stated) == _says(caption, phrases), (caption, it.stated)
                if name in it.stated:  # ... and it names the true value
                    assert _says(caption, tables[name][getattr(it.attributes, name)]), caption
                if name == "background":  # background phrases may contain colour words
                    for p in phrases:
                        caption = re.sub(rf"\b{re.escape(p)}\b", " ", caption)
            if modality == "image":
                assert ("colour" in it.stated) == (it.attributes.colour in world.split_words(caption))
    assert () in seen and ("repetitions", "loudness") in seen and len(seen) > 8


def test_caption_relevance_follows_class_and_stated_attributes():
    items = world.sample_items("audio", 400, seed=3, split="eval")
    rel = world.caption_relevance(items, items)
    assert rel.shape == (400, 400) and rel.dtype == bool and rel.diagonal().all()
    for i, q in enumerate(items[:60]):
        expected = [it.label == q.label and all(getattr(it.attributes, a) == getattr(q.attributes, a)
                                                for a in q.stated) for it in items]
        assert rel[i].tolist() == expected
    plain = next(i for i, q in enumerate(items) if q.stated == ())
    assert rel[plain].sum() == sum(it.label == items[plain].label for it in items)
    full = next(i for i, q in enumerate(items) if len(q.stated) == 3)
    assert rel[full].sum() < rel[plain].sum() / 4
    assert world.caption_relevance(items[:3], items[:10]).shape == (3, 10)


def test_describe_paraphrases_one_item():
    item = world.sample_items("audio", 1, seed=0)[0]
    rng = np.random.default_rng(0)
    texts = {world.describe(item, rng) for _ in range(40)}
    assert len(texts) > 10
    assert all(item.label in t or any(s in t for s in world.get_concept(item.label).synonyms)
               for t in texts)


def test_prompts_use_correct_articles():
    assert world.prompts_for("image", "owl") == ["a photo of an owl", "a picture of an owl",
                                                 "an image of an owl"]
    assert world.prompts_for("audio", "dog")[0] == "the sound of a dog"
    vocab = set(world.vocabulary("audio"))
    assert all(set(world.split_words(p)) <= vocab
               for c in world.class_names() for p in world.prompts_for("audio", c))


def test_unknown_modality_is_rejected():
    with pytest.raises(ValueError, match="unknown modality"):
        world.caption_corpus("video", 3)
