"""Video preprocessing: upstream's frame sampling, resize and normalisation; files decoded with
PyAV (written here); every in-memory input kind; bad inputs -> typed errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from textme_viclip import video
from textme_viclip.video import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    clip_tensor,
    frames_to_tensor,
    read_video,
    sample_indices,
    to_frames,
)
from viclip_testlib import brightness_frames, moving_square, write_video

from textme_sdk.errors import InvalidInputError, MissingInputFileError


# -- sampling ------------------------------------------------------------------------------
@pytest.mark.parametrize("n, expected", [
    (8, [0, 1, 2, 3, 4, 5, 6, 7]),
    (15, [0, 1, 2, 3, 4, 5, 6, 7]),          # step 15 // 8 = 1
    (16, [0, 2, 4, 6, 8, 10, 12, 14]),       # step 2
    (20, [0, 2, 4, 6, 8, 10, 12, 14]),       # step 2: the tail is never reached
    (100, [0, 12, 24, 36, 48, 60, 72, 84]),  # step 12
    (250, [0, 31, 62, 93, 124, 155, 186, 217]),
])
def test_frame_indices_are_upstreams(n, expected):
    """``frames[::len(frames) // 8][:8]`` worked out by hand."""
    assert sample_indices(n) == expected
    assert sample_indices(n) == list(range(n))[:: n // 8][:8]


def test_too_few_frames_is_an_error_as_upstream():
    with pytest.raises(InvalidInputError, match="has 5 frame.*at least 8"):
        sample_indices(5)
    with pytest.raises(InvalidInputError, match="has 7 frame"):
        to_frames(np.zeros((7, 8, 8, 3), np.uint8))


# -- resize and normalisation --------------------------------------------------------------
def test_uniform_frames_normalise_with_imagenet_mean_and_std():
    frames = np.zeros((8, 30, 50, 3), np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 128, 0
    out = frames_to_tensor(frames)
    assert out.shape == (8, 3, 224, 224) and out.dtype == torch.float32
    for c, value in enumerate((255, 128, 0)):
        expected = (value / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(out[:, c], torch.full_like(out[:, c], expected), atol=1e-6)


def test_resize_is_bilinear_with_half_pixel_centres_rounded_to_uint8():
    """OpenCV INTER_LINEAR geometry: a 2-pixel row [0, 100] stretched to 4 pixels samples the
    source at x = -0.25, 0.25, 0.75, 1.25 (clamped): 0, 25, 75, 100; a 3-to-2 shrink samples
    at 0.25 and 1.75: [10, 20, 40] -> 12.5 -> 13 (uint8 rounding), 35."""
    row = np.array([0, 100], np.uint8)
    frames = np.broadcast_to(row[None, None, :, None], (8, 4, 2, 3)).copy()
    out = frames_to_tensor(frames, size=4)
    pixels = out[0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    assert torch.allclose(pixels * 255, torch.tensor([0.0, 25, 75, 100]).expand(4, 4), atol=1e-3)
    shrink = np.broadcast_to(np.array([10, 20, 40], np.uint8)[None, None, :, None],
                             (8, 2, 3, 3)).copy()
    got = frames_to_tensor(shrink, size=2)[0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    assert torch.allclose(got * 255, torch.tensor([13.0, 35]).expand(2, 2), atol=1e-3)


def test_every_input_kind_gives_the_same_tensor():
    frames = moving_square(20, size=40)
    reference = clip_tensor(frames, size=28)
    kinds = [
        frames.astype(np.float32) / 255.0,
        torch.from_numpy(frames),
        torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(frames).float().div(255).half(),
        list(frames),
        [Image.fromarray(f) for f in frames],
        tuple(torch.from_numpy(f) for f in frames),
    ]
    for i, item in enumerate(kinds):
        assert torch.allclose(clip_tensor(item, size=28), reference, atol=1e-6), f"kind {i}"
    assert reference.shape == (8, 3, 28, 28)
    assert torch.equal(clip_tensor(frames[::2][:16], size=28), clip_tensor(frames[::2], size=28))


# -- files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, codec", [("clip.mp4", "mpeg4"), ("clip.mkv", "ffv1"),
                                         ("clip.webm", "libvpx")])
def test_files_decode_to_upstreams_frames(tmp_path, name, codec):
    """20 frames whose grey level encodes their index: frames 0, 2, ..., 14 come back."""
    path = write_video(tmp_path / name, brightness_frames(20), codec=codec)
    frames = read_video(str(path))
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    indices = np.rint(frames.reshape(8, -1).mean(axis=1) / 10).astype(int).tolist()
    assert indices == [0, 2, 4, 6, 8, 10, 12, 14]


def test_a_wrong_stated_frame_count_is_corrected_by_decoding(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", brightness_frames(20))
    assert video._stated_frame_count(str(path)) == 20
    monkeypatch.setattr(video, "_stated_frame_count", lambda p: 33)  # a lying container
    frames = read_video(str(path))
    assert np.rint(frames.reshape(8, -1).mean(axis=1) / 10).astype(int).tolist() == \
        [0, 2, 4, 6, 8, 10, 12, 14]


def test_file_and_in_memory_frames_agree(tmp_path):
    frames = moving_square(24, size=32)
    path = write_video(tmp_path / "square.mkv", frames, codec="ffv1")
    decoded = read_video(str(path))
    # ffv1 is lossless, but RGB -> yuv420p -> RGB is not: compare loosely
    assert np.abs(decoded.astype(int) - frames[::3][:8].astype(int)).mean() < 12
    assert torch.allclose(clip_tensor(path, size=28), clip_tensor(str(path), size=28))


# -- bad inputs ----------------------------------------------------------------------------
def test_bad_files_raise_typed_errors(tmp_path):
    import soundfile

    garbage = tmp_path / "noise.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    good = write_video(tmp_path / "ok.mp4", brightness_frames(20))
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(good.read_bytes()[:200])
    short = write_video(tmp_path / "short.mp4", brightness_frames(5))
    audio = tmp_path / "sound.wav"
    soundfile.write(audio, np.zeros(800, np.float32), 8000)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(MissingInputFileError, match="video file not found"):
        to_frames(tmp_path / "missing.mp4")
    cases = [
        (folder, "is a folder"),
        (garbage, "corrupt"),
        (truncated, "corrupt"),
        (short, "short.mp4.*has 5 frame"),
        (audio, "no video stream"),
    ]
    for item, match in cases:
        with pytest.raises(InvalidInputError, match=match):
            to_frames(item)
    assert to_frames(good).shape == (8, 32, 32, 3)


@pytest.mark.parametrize("item, match", [
    (np.zeros((32, 32, 3), np.uint8), "looks like one image"),
    (np.zeros((2, 10, 8, 8, 3), np.uint8), "a batch of videos"),
    (np.zeros((10, 8, 8, 4), np.uint8), "RGB with 3 channels"),
    (np.zeros((10, 8, 8), np.uint8), r"got shape \(10, 8, 8\)"),
    (np.zeros((10, 0, 8, 3), np.uint8), "zero size"),
    (np.zeros((10, 8, 8, 3), np.int64), "unsupported frame dtype"),
    (np.full((10, 8, 8, 3), np.nan, np.float32), "NaN"),
    (np.full((10, 8, 8, 3), 3.0, np.float32), r"\[0, 1\]"),
    (torch.zeros(10, 4, 8, 8), "RGB with 3 channels"),
    ([], "has no frames"),
    ([np.zeros((8, 8, 3), np.uint8)] * 9 + [np.zeros((4, 8, 3), np.uint8)], "differ in size"),
    ([np.zeros((8, 8), np.uint8)] * 10, "H x W x 3"),
    (42, "cannot read a video from a int"),
    (b"bytes", "cannot read a video from a bytes"),
    (None, "cannot read a video from a NoneType"),
])
def test_bad_in_memory_inputs_raise_typed_errors(item, match):
    with pytest.raises(InvalidInputError, match=match):
        to_frames(item)
