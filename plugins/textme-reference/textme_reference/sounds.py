"""Synthesised sounds of the reference world: short mono clips of one source, repeated.

Every class has a :class:`SoundSignature` (timbre, envelope, pitch glide, modulation and a
base frequency); a clip also carries three attributes that captions talk about: the pitch
(relative to the class's own register), the number of repetitions and the loudness. Synthesis
is plain numpy: 0.75 s at 8 kHz, several thousand clips a second on one core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ENVELOPES",
    "GLIDES",
    "LOUDNESS",
    "MODULATIONS",
    "NUM_SAMPLES",
    "PITCHES",
    "REPETITIONS",
    "SAMPLE_RATE",
    "TIMBRES",
    "SoundAttributes",
    "SoundSignature",
    "sample_sound_attributes",
    "synthesise",
]

#: Samples per second of every clip.
SAMPLE_RATE = 8000
#: Samples per clip (0.75 s).
NUM_SAMPLES = 6000

#: Pitch words and the factor they apply to a class's base frequency.
PITCHES: dict[str, float] = {"low": 0.7, "medium": 1.0, "high": 1.45}
#: How many times the source sounds in one clip.
REPETITIONS: tuple[int, ...] = (1, 2, 3, 4)
#: Loudness words and the range of peak amplitudes they mean.
LOUDNESS: dict[str, tuple[float, float]] = {"quiet": (0.1, 0.2), "loud": (0.55, 0.9)}

#: Partial frequencies (multiples of f0) and amplitudes of each harmonic timbre;
#: ``"noise"`` is band-limited noise around f0 instead.
TIMBRES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "sine": ((1.0,), (1.0,)),
    "odd": ((1.0, 3.0, 5.0, 7.0), (1.0, 0.33, 0.2, 0.14)),
    "saw": ((1.0, 2.0, 3.0, 4.0, 5.0, 6.0), (1.0, 0.5, 0.33, 0.25, 0.2, 0.17)),
    "bright": ((1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0), (0.6, 0.8, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5)),
    "bell": ((1.0, 2.76, 5.4, 8.93), (1.0, 0.6, 0.4, 0.25)),
    "noise": ((), ()),
}
ENVELOPES: tuple[str, ...] = ("pluck", "sustain", "swell", "click")
GLIDES: tuple[str, ...] = ("flat", "up", "down", "arch")
MODULATIONS: tuple[str, ...] = ("none", "vibrato", "tremolo")


@dataclass(frozen=True)
class SoundSignature:
    """What makes a class recognisable by ear.

    Attributes:
        timbre: a key of :data:`TIMBRES`.
        envelope: the loudness shape of one event (:data:`ENVELOPES`).
        glide: the pitch contour of one event (:data:`GLIDES`).
        modulation: ``"vibrato"`` (pitch wobble), ``"tremolo"`` (loudness wobble) or ``"none"``.
        base_hz: the class's medium pitch.
    """

    timbre: str
    envelope: str
    glide: str
    modulation: str
    base_hz: float

    def __post_init__(self) -> None:
        ok = (self.timbre in TIMBRES and self.envelope in ENVELOPES and self.glide in GLIDES
              and self.modulation in MODULATIONS and 40.0 <= self.base_hz <= 2000.0)
        if not ok:
            raise ValueError(f"invalid sound signature {self}")


@dataclass(frozen=True)
class SoundAttributes:
    """The varying properties of one clip, each named by caption words."""

    pitch: str
    repetitions: int
    loudness: str


def sample_sound_attributes(rng: np.random.Generator) -> SoundAttributes:
    """Draw pitch, repetitions and loudness uniformly."""
    pitches, levels = list(PITCHES), list(LOUDNESS)
    return SoundAttributes(
        pitch=pitches[int(rng.integers(len(pitches)))],
        repetitions=REPETITIONS[int(rng.integers(len(REPETITIONS)))],
        loudness=levels[int(rng.integers(len(levels)))],
    )


def _envelope(kind: str, tau: np.ndarray) -> np.ndarray:
    """Amplitude over normalised event time ``tau`` in [0, 1)."""
    attack = np.minimum(1.0, tau / 0.03)
    if kind == "pluck":
        return attack * np.exp(-5.0 * tau)
    if kind == "click":
        return attack * np.exp(-25.0 * tau)
    release = np.minimum(1.0, (1.0 - tau) / 0.1)
    if kind == "swell":
        return np.minimum(tau**1.5, release)
    return np.minimum(np.minimum(1.0, tau / 0.05), release)  # sustain


def _glide(kind: str, tau: np.ndarray) -> np.ndarray:
    """Frequency factor over normalised event time."""
    if kind == "up":
        return 2.0 ** (0.7 * tau - 0.35)
    if kind == "down":
        return 2.0 ** (0.35 - 0.7 * tau)
    if kind == "arch":
        return 2.0 ** (0.45 * np.sin(np.pi * tau) - 0.2)
    return np.ones_like(tau)


def _band_noise(n: int, f0: float, rng: np.random.Generator) -> np.ndarray:
    """White noise band-passed to roughly [0.5 f0, 2.5 f0]."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    spectrum[(freqs < 0.5 * f0) | (freqs > 2.5 * f0)] = 0.0
    return np.fft.irfft(spectrum, n)


def _harmonic(sig: SoundSignature, f0: float, t: np.ndarray, tau: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Sum of the timbre's partials following the glide and vibrato (below Nyquist only)."""
    freq = f0 * _glide(sig.glide, tau)
    if sig.modulation == "vibrato":
        freq = freq * (1.0 + 0.04 * np.sin(2 * np.pi * 6.0 * t))
    phase = np.cumsum(freq * np.float32(2 * np.pi / SAMPLE_RATE)) + np.float32(rng.uniform(0, 6.28))
    ratios, amps = TIMBRES[sig.timbre]
    top = freq.max()
    out = np.zeros_like(t)
    for ratio, amp in zip(ratios, amps):
        if ratio * top < 0.45 * SAMPLE_RATE:
            out += amp * np.sin(ratio * phase)
    return out


def _event(sig: SoundSignature, f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """One sounding of the source, ``n`` samples, peak 1."""
    t = np.arange(n, dtype=np.float32) / np.float32(SAMPLE_RATE)
    tau = np.arange(n, dtype=np.float32) / np.float32(n)
    if sig.timbre == "noise":
        wave = _band_noise(n, f0, rng)
    else:
        wave = _harmonic(sig, f0, t, tau, rng)
    wave = wave * _envelope(sig.envelope, tau)
    if sig.modulation == "tremolo":
        wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * 18.0 * t))
    return wave / (np.abs(wave).max() + 1e-9)


def _add_distractor(clip: np.ndarray, sig: SoundSignature, gain: float,
                    rng: np.random.Generator) -> None:
    """Mix one quieter event of another source somewhere into ``clip`` (in place)."""
    length = int(NUM_SAMPLES * rng.uniform(0.15, 0.35))
    start = int(rng.integers(0, NUM_SAMPLES - length))
    event = _event(sig, sig.base_hz * rng.uniform(0.8, 1.25), length, rng).astype(np.float32)
    clip[start : start + length] += np.float32(gain * rng.uniform(0.3, 0.8)) * event


def synthesise(sig: SoundSignature, attrs: SoundAttributes, rng: np.random.Generator,
               noise: float | None = None, distractor: SoundSignature | None = None) -> np.ndarray:
    """Synthesise one clip: ``float32 [NUM_SAMPLES]`` in [-1, 1] at :data:`SAMPLE_RATE`.

    The clip is split into ``attrs.repetitions`` equal slots; each slot holds the same event
    (about 70% of the slot, a quarter for clicks, slightly jittered in time and level) at the
    class's base pitch times the pitch factor, scaled to the loudness's amplitude, over a
    faint noise floor.

    Args:
        sig: the class's sound signature.
        attrs: pitch, repetitions and loudness.
        rng: the source of jitter (pitch, timing, amplitude, phase, noise).
        noise: standard deviation of the background noise floor; ``None`` draws it per clip
            between 0.005 and 0.06 (from studio-clean to a noisy street).
        distractor: another source heard once, quieter, at a random time (captions never
            mention it, as audio captions skip background sounds).
    """
    if noise is None:
        noise = rng.uniform(0.005, 0.06)
    clip = rng.standard_normal(NUM_SAMPLES, dtype=np.float32) * np.float32(noise)
    f0 = sig.base_hz * PITCHES[attrs.pitch] * rng.uniform(0.92, 1.08)
    lo, hi = LOUDNESS[attrs.loudness]
    gain = rng.uniform(lo, hi)
    slot = NUM_SAMPLES // attrs.repetitions
    length = int(slot * (0.7 if sig.envelope != "click" else 0.25))
    event = _event(sig, f0, length, rng).astype(np.float32)
    for k in range(attrs.repetitions):
        start = k * slot + int(rng.integers(0, max(1, slot - length - 20)) * 0.3)
        clip[start : start + length] += np.float32(gain * rng.uniform(0.85, 1.0)) * event
    if distractor is not None:
        _add_distractor(clip, distractor, gain, rng)
    return np.clip(clip, -1.0, 1.0)
