"""Offline tests of the CLAP audio pipeline: decoding real files written here, down-mixing,
resampling, the 10 s window (repeat-pad / windows / crop) and the fusion log-mel features,
checked against transformers' ClapFeatureExtractor (the upstream reference that runs here;
torchaudio, which LAION-CLAP uses, does not load next to this torch)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import soundfile
import soxr
import torch
import torch.nn.functional as F
from scipy.io import wavfile
from textme_clap.audio import (
    MelParams,
    center_crop,
    fusion_features,
    log_mel,
    mel_filterbank_htk,
    quantize_int16,
    repeat_pad,
    split_windows,
    to_waveform,
)

from textme_sdk.errors import InvalidInputError

SR = 48_000
PARAMS = MelParams()  # LAION-CLAP's HTSAT audio_cfg: 1024 / 480 / 64 mels / 50-14000 Hz / 10 s


def tone(seconds: float, rate: int = SR, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.05
    return (0.4 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def reference_extractor():
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(frequency_min=50, frequency_max=14_000)


# -- fitting the 10 s window ---------------------------------------------------------------
def test_repeat_pad_tiles_then_zero_pads_like_upstream():
    clip = np.array([1, 2, 3], np.float32)
    assert repeat_pad(clip, 10).tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 3, 0]
    assert repeat_pad(clip, 3).tolist() == [1, 2, 3]


def test_long_clips_are_covered_not_dropped():
    wave = np.arange(25, dtype=np.float32)
    windows = split_windows(wave, 10)
    assert [w[0] for w in windows] == [0, 10, 15]  # the last window ends at the clip's end
    assert all(len(w) == 10 for w in windows)
    assert set(np.concatenate(windows).tolist()) == set(wave.tolist())
    assert split_windows(wave[:4], 10)[0].tolist() == repeat_pad(wave[:4], 10).tolist()
    assert center_crop(wave, 10).tolist() == list(range(7, 17))


def test_quantize_matches_clap_modules_int16_round_trip():
    wave = np.array([-2.0, -1.0, -0.123456, 0.0, 0.5, 1.5], np.float32)
    expected = (np.clip(wave, -1, 1) * 32767.0).astype(np.int16) / 32767.0
    assert np.array_equal(quantize_int16(wave), expected.astype(np.float32))


# -- decoding ------------------------------------------------------------------------------
def test_wav_file_is_downmixed_and_resampled_to_48k(tmp_path):
    left, right = tone(1.5, 16_000, 440), tone(1.5, 16_000, 660, seed=1)
    stereo = np.stack([left, right], axis=1)
    path = tmp_path / "stereo16k.wav"
    wavfile.write(path, 16_000, (stereo * 32767).astype(np.int16))
    wave = to_waveform(str(path))
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) == 3 * len(left)
    decoded = (stereo * 32767).astype(np.int16).astype(np.float32) / 32768.0
    expected = soxr.resample(decoded.mean(axis=1), 16_000, SR, quality="HQ")
    assert np.allclose(wave, expected, atol=1e-6)


def test_every_input_kind_gives_the_same_waveform(tmp_path):
    clip = tone(0.5, 22_050)
    flac = tmp_path / "clip.flac"
    soundfile.write(flac, clip, 22_050, subtype="PCM_24")
    from_file = to_waveform(flac)
    from_tuple = to_waveform((clip, 22_050))
    assert np.allclose(from_file, from_tuple, atol=1e-5)
    for item in [(torch.from_numpy(clip), 22_050), {"array": clip, "sampling_rate": 22_050},
                 (np.stack([clip, clip]), 22_050), (torch.from_numpy(clip)[:, None], 22_050)]:
        assert np.allclose(to_waveform(item), from_tuple, atol=1e-6)
    pcm = (clip * 32767).astype(np.int16)
    assert np.allclose(to_waveform((pcm, 22_050)), from_tuple, atol=1e-3)
    assert np.array_equal(to_waveform(clip, input_sample_rate=22_050), from_tuple)
    assert np.array_equal(to_waveform((tone(0.2), SR)), tone(0.2))  # 48 kHz passes through


def test_bad_audio_inputs_raise_clear_errors(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    cases = [
        (tmp_path / "missing.wav", "not found.*check the path"),
        (junk, "could not decode.*corrupt"),
        (np.zeros(10, np.float32), "no sample rate"),
        ((np.zeros((2, 3, 4), np.float32), SR), "1-D"),
        ((np.array([np.nan, 0.0], np.float32), SR), "NaN.*nan_to_num"),
        ((np.zeros(0, np.float32), SR), "empty"),
        ((np.zeros(10, np.float32), 0), "positive"),
        (b"bytes", "cannot read audio"),
    ]
    for item, match in cases:
        with pytest.raises(InvalidInputError, match=match):
            to_waveform(item)


def test_files_may_have_many_channels_arrays_may_not(tmp_path):
    """A file's channel axis is known, so 10 channels are down-mixed; a 10-row array is far more
    likely a batch of clips and is refused."""
    rows = np.stack([tone(0.3, SR, 200 + 50 * i, seed=i) for i in range(10)])
    path = tmp_path / "ten.wav"
    soundfile.write(path, rows.T, SR, subtype="FLOAT")
    assert np.allclose(to_waveform(path), rows.mean(axis=0), atol=1e-6)
    with pytest.raises(InvalidInputError, match="10 channels.*batch"):
        to_waveform((rows, SR))
    assert np.allclose(to_waveform((rows[:8], SR)), rows[:8].mean(axis=0), atol=1e-6)


# -- fusion log-mel features ---------------------------------------------------------------
def test_htk_filterbank_matches_the_torchaudio_equivalent(reference_extractor):
    ours = mel_filterbank_htk(PARAMS).numpy()
    assert ours.shape == (513, 64)
    assert np.allclose(ours, reference_extractor.mel_filters, atol=1e-6)


def test_log_mel_matches_clap_feature_extractor(reference_extractor):
    wave = tone(2.0)
    ours = log_mel(wave, PARAMS).numpy()
    reference = reference_extractor._np_extract_fbank_features(
        wave.astype(np.float64), reference_extractor.mel_filters
    )
    assert ours.shape == reference.shape == (2 * SR // 480 + 1, 64)
    assert np.allclose(ours, reference, atol=1e-3)


def test_short_clip_fusion_input_is_four_copies_of_the_padded_mel():
    wave = tone(3.0)
    features, longer = fusion_features(wave, PARAMS)
    assert features.shape == (4, 1001, 64) and longer is False
    padded = log_mel(repeat_pad(wave, PARAMS.max_samples), PARAMS)
    assert all(torch.equal(channel, padded) for channel in features)


def test_long_clip_fusion_input_is_deterministic_and_matches_upstream(reference_extractor):
    wave = tone(23.0)
    features, longer = fusion_features(wave, PARAMS)
    assert features.shape == (4, 1001, 64) and longer is True
    again, _ = fusion_features(wave, PARAMS)
    assert torch.equal(features, again)
    mel = log_mel(wave, PARAMS)
    total = mel.shape[0]
    reference = reference_extractor._random_mel_fusion(mel.numpy(), total, 1001)
    assert np.allclose(features[0].numpy(), reference[0], atol=1e-4)  # the shrunk whole clip
    thirds = np.array_split(np.arange(total - 1001 + 1), 3)
    for channel, third in zip(features[1:], thirds, strict=True):
        start = int(third[len(third) // 2])
        assert torch.equal(channel, mel[start:start + 1001])


@pytest.mark.parametrize("seconds, min_gap_db", [(10.5, 1.0), (23.0, 5.0), (60.0, 15.0)])
def test_fusion_shrink_is_bilinear_without_antialiasing(seconds, min_gap_db):
    """The chosen behaviour, pinned: channel 0 of a long clip is the plain bilinear shrink
    (transformers' ClapFeatureExtractor; torchvision Resize on tensors before 0.17, when
    LAION-CLAP was trained), not the antialiased one (torchvision >= 0.17's Resize), which
    differs more the longer the clip."""
    wave = tone(seconds)
    features, longer = fusion_features(wave, PARAMS)
    assert longer is True
    mel = log_mel(wave, PARAMS)[None, None]
    plain = F.interpolate(mel, size=(1001, 64), mode="bilinear", align_corners=False,
                          antialias=False)[0, 0]
    smooth = F.interpolate(mel, size=(1001, 64), mode="bilinear", align_corners=False,
                           antialias=True)[0, 0]
    assert torch.equal(features[0], plain)  # the same computation
    gap = (features[0] - smooth).abs().max().item()
    assert gap > min_gap_db, gap  # dB: 2.3 at 10.5 s, 11.0 at 23 s, 20.2 at 60 s here


def test_torchvision_resize_antialiases_tensors_now():
    """What laion_clap's get_audio_features computes with the installed torchvision (>= 0.17):
    the antialiased shrink, so it differs from this plugin's (and the training-time) input."""
    transforms = pytest.importorskip("torchvision.transforms")
    mel = log_mel(tone(23.0), PARAMS)
    resized = transforms.Resize(size=[1001, 64])(mel[None])[0]
    smooth = F.interpolate(mel[None, None], size=(1001, 64), mode="bilinear",
                           align_corners=False, antialias=True)[0, 0]
    torch.testing.assert_close(resized, smooth, atol=1e-4, rtol=0)
    assert (resized - fusion_features(tone(23.0), PARAMS)[0][0]).abs().max() > 5.0


def test_barely_longer_clip_is_not_treated_as_longer():
    wave = tone(10.0 + 100 / SR)  # fewer extra samples than one hop
    features, longer = fusion_features(wave, PARAMS)
    assert longer is False and features.shape == (4, 1001, 64)
