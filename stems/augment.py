"""Effects on the training stems before they are summed (issue 39), so that the target of each
stem carries its effect: pitch shift with the tempo kept, peaking EQ and tanh saturation
(audiomentations), reverb or echo, and a limiter on the mix that lowers every stem by the gain
it applies (LimitAug: released music is loud and limited, multitrack stems are not). One effect
is the mix's alone: an MP3 encoder and decoder (ffmpeg's LAME), whose error the targets do not
carry (people separate MP3s; the stems stay clean).

Each stem kind has its own schedule (probabilities and ranges after ZFTurbo's MUSDB18 configs
and Demucs' repitch); every draw comes from the effects' own seeded generator, so that the
excerpt stream of a run is the same with and without them. A stem is (channels, samples)
float32 and the stems of an example (sources, channels, samples); every effect keeps the length.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import fftconvolve

from .audio import ffmpeg_binary
from .config import AUGMENT_FAMILIES
from .data import SILENCE


@dataclass(frozen=True)
class StemSchedule:
    """How often (probability per example) and how strongly one kind of stem is processed."""

    pitch: float  # probability of a pitch shift
    semitones: float  # the shift's range, ± semitones
    eq: float  # probability of one to three peaking bands of ±9 dB
    saturation: float  # probability of tanh saturation
    saturation_max: float  # the strongest saturation drawn (audiomentations' distortion amount, 0..1)
    space: float  # probability of reverb or echo


# Vocals ±5 semitones at 0.1, drums ±5 at 0.33, bass ±2, other ±4 (ZFTurbo's MUSDB18 configs);
# reverb and echo only where records put them, on vocals and the other instruments.
SCHEDULES = {
    "vocals": StemSchedule(pitch=0.1, semitones=5, eq=0.25, saturation=0.1, saturation_max=0.7, space=0.2),
    "drums": StemSchedule(pitch=0.33, semitones=5, eq=0.25, saturation=0.33, saturation_max=0.6, space=0.0),
    "bass": StemSchedule(pitch=0.1, semitones=2, eq=0.25, saturation=0.2, saturation_max=0.5, space=0.0),
    "other": StemSchedule(pitch=0.1, semitones=4, eq=0.25, saturation=0.2, saturation_max=0.6, space=0.2),
}
# a stem of a kind not listed above (a config's own sources, e.g. piano): EQ only
UNLISTED_SCHEDULE = StemSchedule(pitch=0.0, semitones=0, eq=0.25, saturation=0.0, saturation_max=0.0, space=0.0)
LIMITER_PROBABILITY = 0.5
LIMITER_DRIVE_DB = (0.0, 12.0)  # how far the mix's peak is pushed over the limiter's ceiling
LIMITER_RELEASE_S = (0.01, 0.1)
MIXUP_PROBABILITY = 0.2  # per stem: a second stem of the same kind, from another song, added
CODEC_PROBABILITY = 0.25  # per example: the mix through an MP3 encoder and decoder
CODEC_KBPS = (64, 96, 128, 160, 192, 256, 320)  # the bit rates drawn from, uniformly


def pitch_shift(audio: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """`audio` (channels, samples) `semitones` higher (lower if negative) at the same tempo."""
    from audiomentations import PitchShift
    return PitchShift(min_semitones=semitones, max_semitones=semitones, p=1.0)(audio, sample_rate)


def peaking_eq(audio: np.ndarray, bands: list[tuple[float, float, float]], sample_rate: int) -> np.ndarray:
    """`audio` (channels, samples) through peaking filters, each (centre Hz, gain dB, Q)."""
    from audiomentations import PeakingFilter
    for centre, gain_db, q in bands:
        audio = PeakingFilter(min_center_freq=centre, max_center_freq=centre, min_gain_db=gain_db,
                              max_gain_db=gain_db, min_q=q, max_q=q, p=1.0)(audio, sample_rate)
    return audio


def saturate(audio: np.ndarray, amount: float, sample_rate: int) -> np.ndarray:
    """`audio` (channels, samples) through tanh saturation (`amount` 0..1), at its own loudness."""
    from audiomentations import TanhDistortion
    return TanhDistortion(min_distortion=amount, max_distortion=amount, p=1.0)(audio, sample_rate)


def reverb(audio: np.ndarray, rng: np.random.Generator, sample_rate: int, rt60: float, wet_db: float) -> np.ndarray:
    """`audio` (channels, samples) plus a synthetic room: exponentially decaying noise, its own
    per channel (a wide tail), reaching -60 dB after `rt60` seconds, `wet_db` under the dry
    signal's energy."""
    length = max(1, int(rt60 * sample_rate))
    decay = np.exp(-6.9 * np.arange(length) / length)
    response = rng.standard_normal((audio.shape[0], length)) * decay
    wet = fftconvolve(audio, response, axes=-1)[..., : audio.shape[-1]]
    return (audio + _scaled_like(wet, audio, wet_db)).astype(np.float32)


def echo(audio: np.ndarray, delay_s: float, feedback: float, wet_db: float, sample_rate: int) -> np.ndarray:
    """`audio` (channels, samples) plus repeats every `delay_s` seconds, each `feedback` times
    the one before, `wet_db` under the dry signal's energy."""
    delay = max(1, int(delay_s * sample_rate))
    wet = np.zeros_like(audio)
    tap, gain = delay, 1.0
    while tap < audio.shape[-1] and gain > 1e-3:
        wet[..., tap:] += gain * audio[..., : audio.shape[-1] - tap]
        tap, gain = tap + delay, gain * feedback
    return (audio + _scaled_like(wet, audio, wet_db)).astype(np.float32)


def _scaled_like(wet: np.ndarray, dry: np.ndarray, db: float) -> np.ndarray:
    wet_energy = float(np.square(wet, dtype=np.float64).sum())
    if wet_energy == 0.0:
        return wet
    return wet * np.sqrt(float(np.square(dry, dtype=np.float64).sum()) / wet_energy * 10 ** (db / 10))


def mp3_roundtrip(audio: np.ndarray, kbps: int, sample_rate: int) -> np.ndarray:
    """`audio` (channels, samples) encoded as MP3 at `kbps` (LAME, constant bit rate) and decoded
    again, aligned to and as long as the input: the file's LAME header tells the decoder the
    encoder's delay and padding (a pipe cannot carry it: the decoded audio would lag 1105
    samples)."""
    ffmpeg = ffmpeg_binary()
    channels, samples = audio.shape
    raw = np.ascontiguousarray(audio.T, dtype="<f4").tobytes()
    with tempfile.TemporaryDirectory(prefix="stems-mp3-") as folder:
        path = Path(folder) / "mix.mp3"
        subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels),
                        "-i", "-", "-c:a", "libmp3lame", "-b:a", f"{kbps}k", str(path)], input=raw, check=True)
        decoded = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", str(channels),
                                  "-ar", str(sample_rate), "-"], capture_output=True, check=True).stdout
    out = np.frombuffer(decoded, dtype="<f4").reshape(-1, channels).T[:, :samples]
    return np.ascontiguousarray(np.pad(out, ((0, 0), (0, samples - out.shape[1]))), dtype=np.float32)


def limiter_gain(mix: np.ndarray, ceiling: float, window: int) -> np.ndarray:
    """The gain (samples,) that keeps `mix` (channels, samples) within ±`ceiling`: the gain each
    sample needs, its minimum over `window` samples either way, then averaged over as many, so
    that it changes smoothly and never lets a sample over the ceiling."""
    level = np.abs(mix).max(axis=0)
    needed = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    floor = minimum_filter1d(needed, size=window, mode="nearest")
    return np.minimum(uniform_filter1d(floor, size=window, mode="nearest"), needed)


class StemEffects:
    """The effects of the families named in `families` (a subset of AUGMENT_FAMILIES) for stems in the
    order `sources` (a config's model.sources), with their own generator seeded by `seed`."""

    def __init__(self, families: tuple[str, ...], sources: tuple[str, ...], sample_rate: int, seed):
        unknown = sorted(set(families) - set(AUGMENT_FAMILIES))
        if unknown:
            raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose among {', '.join(AUGMENT_FAMILIES)}")
        self.families = frozenset(families)
        self.schedules = [SCHEDULES.get(name, UNLISTED_SCHEDULE) for name in sources]
        self.sample_rate = sample_rate
        self.rng = np.random.default_rng(seed)

    def wants_mixup(self) -> bool:
        """Whether the next stem gets a second one of its kind (drawn only with the mixup family)."""
        return "mixup" in self.families and self.rng.random() < MIXUP_PROBABILITY

    def __call__(self, stems: np.ndarray) -> np.ndarray:
        """Every stem of one example (sources, channels, samples) through its effects; a new array."""
        return np.stack([self.stem(audio, schedule) for audio, schedule in zip(stems, self.schedules)])

    def master(self, stems: np.ndarray) -> np.ndarray:
        """The example's stems (sources, channels, samples) as the limiter on their sum leaves
        them, when the limiter family is on and drawn; the last step before the mix is summed."""
        if "limiter" in self.families and self.rng.random() < LIMITER_PROBABILITY:
            return self.limit(stems)
        return stems

    def codec_error(self, mix: np.ndarray) -> np.ndarray | None:
        """What an MP3 encoder and decoder at a drawn bit rate add to `mix` (channels, samples),
        when the codec family is on and drawn; None otherwise. The network hears the mix plus
        this error, and the targets stay the clean stems."""
        if "codec" not in self.families:
            return None
        drawn, kbps = self.rng.random(), int(self.rng.choice(CODEC_KBPS))  # both drawn: a stable stream
        if drawn >= CODEC_PROBABILITY or np.abs(mix).max() < SILENCE:
            return None
        return mp3_roundtrip(mix, kbps, self.sample_rate) - mix

    def stem(self, audio: np.ndarray, schedule: StemSchedule) -> np.ndarray:
        """One stem (channels, samples) through the effects its schedule draws, in the order a
        studio applies them: pitch, EQ, saturation, then the room."""
        rng, rate = self.rng, self.sample_rate
        draws = rng.random(4)  # one per effect, drawn whether or not it applies: a stable stream
        audible = np.abs(audio).max() > SILENCE
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if "pitch" in self.families and draws[0] < schedule.pitch:
            semitones = rng.uniform(-schedule.semitones, schedule.semitones)
            if audible:
                audio = pitch_shift(audio, semitones, rate)
        if "eq" in self.families and draws[1] < schedule.eq:
            bands = [(float(np.exp(rng.uniform(np.log(60.0), np.log(12000.0)))), rng.uniform(-9.0, 9.0),
                      rng.uniform(0.5, 4.0)) for _ in range(rng.integers(1, 4))]
            if audible:
                audio = peaking_eq(audio, bands, rate)
        if "saturation" in self.families and draws[2] < schedule.saturation:
            amount = rng.uniform(0.1, schedule.saturation_max)
            if audible:
                audio = saturate(audio, amount, rate)
        if "space" in self.families and draws[3] < schedule.space:
            if rng.random() < 0.5:
                audio = reverb(audio, rng, rate, rt60=rng.uniform(0.3, 2.0), wet_db=rng.uniform(-18.0, -6.0))
            else:
                audio = echo(audio, rng.uniform(0.06, 0.4), rng.uniform(0.2, 0.5), rng.uniform(-18.0, -6.0), rate)
        return np.ascontiguousarray(audio, dtype=np.float32)

    def limit(self, stems: np.ndarray) -> np.ndarray:
        """The stems (sources, channels, samples) times the gain a limiter applies to their sum,
        driven LIMITER_DRIVE_DB over its ceiling, then raised back to the mix's peak: a loud,
        limited mix whose stems still add up to it."""
        mix = stems.sum(axis=0)
        peak = float(np.abs(mix).max())
        drive = self.rng.uniform(*LIMITER_DRIVE_DB)
        release = self.rng.uniform(*LIMITER_RELEASE_S)
        if peak < SILENCE:
            return stems
        ceiling = peak * 10 ** (-drive / 20)
        gain = limiter_gain(mix, ceiling, max(1, int(release * self.sample_rate))) * (peak / ceiling)
        return (stems * gain.astype(np.float32)).astype(np.float32)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state
