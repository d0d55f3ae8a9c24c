"""Effects on the training stems (stems/augment.py) and how the sampler applies them."""

import json
import math
import shutil

import numpy as np
import pytest

from stems import augment
from stems.augment import StemEffects, echo, limiter_gain, mp3_roundtrip, peaking_eq, pitch_shift, reverb, saturate
from stems.config import AUGMENT_FAMILIES, ConfigError, TrainConfig
from stems.data import ExcerptSampler, Song
from conftest import synth

RATE = 44100
SOURCES = ("drums", "bass", "other", "vocals")


def sine(frequency: float, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return np.stack([wave, wave])


def peak_frequency(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.argmax(spectrum) * RATE / wave.size)


def noise_song(name: str, seed: int, seconds: float = 2.0, band_hz: float = math.inf) -> Song:
    rng = np.random.default_rng(seed)
    return Song(name, (0.1 * rng.standard_normal((4, 2, int(seconds * RATE)))).astype(np.float32), band_hz=band_hz)


def test_pitch_shift_moves_a_tone_by_its_semitones_and_keeps_the_length():
    tone = sine(440.0)
    shifted = pitch_shift(tone, 12.0, RATE)
    assert shifted.shape == tone.shape
    assert peak_frequency(shifted[0, RATE // 4: -RATE // 4]) == pytest.approx(880.0, rel=0.02)
    lower = pitch_shift(tone, -5.0, RATE)
    assert peak_frequency(lower[1, RATE // 4: -RATE // 4]) == pytest.approx(440.0 * 2 ** (-5 / 12), rel=0.02)


def test_peaking_eq_changes_the_level_at_its_centre_only():
    for frequency, expected_db in ((1000.0, 9.0), (100.0, 0.0)):
        tone = sine(frequency)
        boosted = peaking_eq(tone, [(1000.0, 9.0, 2.0)], RATE)
        ratio_db = 20 * np.log10(np.abs(boosted[:, RATE // 2:]).max() / np.abs(tone[:, RATE // 2:]).max())
        assert ratio_db == pytest.approx(expected_db, abs=0.5)


def test_saturation_adds_harmonics_at_the_same_loudness():
    tone = sine(500.0)
    driven = saturate(tone, 0.7, RATE)
    rms = lambda x: np.sqrt(np.mean(np.square(x)))  # noqa: E731
    assert rms(driven) == pytest.approx(rms(tone), rel=0.01)
    spectrum = np.abs(np.fft.rfft(driven[0]))
    assert spectrum[1500] > 0.05 * spectrum[500]  # the third harmonic (1 Hz bins over one second)
    assert np.abs(np.fft.rfft(tone[0]))[1500] < 1e-3 * spectrum[500]


def test_echo_repeats_an_impulse_every_delay_with_its_feedback():
    impulse = np.zeros((2, RATE), np.float32)
    impulse[:, 0] = 1.0
    out = echo(impulse, 0.1, 0.5, -6.0, RATE)
    delay = int(0.1 * RATE)
    taps = out[0, delay::delay][:4]
    assert out[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(taps[1:] / taps[:-1], 0.5, rtol=1e-5)
    wet = out - impulse
    assert 10 * np.log10(np.square(wet).sum() / np.square(impulse).sum()) == pytest.approx(-6.0, abs=1e-3)


def test_reverb_adds_a_decaying_tail_at_its_level():
    rng = np.random.default_rng(0)
    burst = np.zeros((2, 2 * RATE), np.float32)
    burst[:, :1000] = rng.standard_normal((2, 1000))
    out = reverb(burst, np.random.default_rng(1), RATE, rt60=0.5, wet_db=-10.0)
    tail = out[:, 1000:]
    early, late = np.square(tail[:, : RATE // 10]).mean(), np.square(tail[:, 2 * RATE // 5: RATE // 2]).mean()
    assert 10 * np.log10(early / late) > 20  # about 60 dB per 0.5 s: the tail decays
    wet = out - burst
    assert 10 * np.log10(np.square(wet).sum() / np.square(burst).sum()) == pytest.approx(-10.0, abs=1e-3)
    assert not np.allclose(out[0, 1000:], out[1, 1000:])  # a tail of its own per channel


def test_the_limiter_gain_keeps_the_mix_under_its_ceiling_and_moves_smoothly():
    mix = sine(200.0, amplitude=0.2)
    mix[:, RATE // 2: RATE // 2 + 2000] *= 4.0  # a loud hit
    gain = limiter_gain(mix, 0.3, window=441)
    assert gain.shape == (mix.shape[-1],)
    assert np.abs(mix * gain).max() <= 0.3 + 1e-6
    assert gain.max() <= 1.0 and gain[:1000].min() == pytest.approx(1.0)
    assert np.abs(np.diff(gain)).max() < 0.01  # no click: the gain ramps over the window


def test_limited_stems_still_add_up_to_the_limited_mix_at_the_same_peak():
    effects = StemEffects(("limiter",), SOURCES, RATE, seed=0)
    rng = np.random.default_rng(2)
    stems = (0.1 * rng.standard_normal((4, 2, RATE))).astype(np.float32)
    stems[0, :, 1000:1100] += 3.0  # a drum hit far above the rest
    limited = effects.limit(stems)
    peak = np.abs(stems.sum(axis=0)).max()
    assert np.abs(limited.sum(axis=0)).max() == pytest.approx(peak, rel=1e-4)
    ratio = limited / stems  # one gain per sample, the same for every stem and channel
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0, 0], ratio.shape), rtol=1e-4)
    # louder: the limiter raised everything but the hit
    assert np.square(limited[1:]).mean() > np.square(stems[1:]).mean()


def test_effects_are_seeded_and_stay_in_shape():
    rng = np.random.default_rng(3)
    stems = (0.1 * rng.standard_normal((4, 2, 16384))).astype(np.float32)
    first = StemEffects(AUGMENT_FAMILIES, SOURCES, RATE, seed=[5, 1])
    second = StemEffects(AUGMENT_FAMILIES, SOURCES, RATE, seed=[5, 1])
    for _ in range(5):
        a, b = first.master(first(stems)), second.master(second(stems))
        assert a.shape == stems.shape and a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown augmentation wah"):
        StemEffects(("wah",), SOURCES, RATE, seed=0)


def test_each_stem_kind_follows_its_own_schedule(monkeypatch):
    shifted = []
    monkeypatch.setattr(augment, "pitch_shift", lambda audio, semitones, rate: shifted.append(semitones) or audio)
    effects = StemEffects(("pitch",), ("bass",), RATE, seed=0)
    stems = np.full((1, 2, 1024), 0.1, np.float32)
    for _ in range(2000):
        effects(stems)
    assert 0.07 < len(shifted) / 2000 < 0.13  # bass: p 0.1
    assert max(abs(s) for s in shifted) <= 2.0  # bass: ±2 semitones


def test_the_sampler_draws_the_same_excerpts_with_effects_and_resumes_them():
    songs = [noise_song("a", 0), noise_song("b", 1)]
    plain = ExcerptSampler(songs, 8192, seed=3, speed_range=0.1)
    effects = StemEffects(("eq", "saturation", "limiter", "mixup"), SOURCES, RATE, seed=[3, 1])
    treated = ExcerptSampler(songs, 8192, seed=3, speed_range=0.1, effects=effects)
    assert not np.array_equal(plain.batch(8), treated.batch(8))
    assert plain.state() == treated.state()["excerpts"]  # the effects drew nothing from the excerpts' stream
    state = json.loads(json.dumps(treated.state()))  # as a run's state file holds it
    expected = treated.batch(4)
    resumed = ExcerptSampler(songs, 8192, seed=9, speed_range=0.1,
                             effects=StemEffects(("eq", "saturation", "limiter", "mixup"), SOURCES, RATE, seed=0))
    resumed.set_state(state)
    np.testing.assert_array_equal(resumed.batch(4), expected)


def test_mixup_adds_a_second_stem_of_the_same_kind(monkeypatch):
    monkeypatch.setattr(augment, "MIXUP_PROBABILITY", 1.0)
    songs = [noise_song("a", 0), noise_song("b", 1)]
    songs[1].stems[3] = 0.0  # song b has no vocals: a mixed-up vocal stem comes from song a
    plain = ExcerptSampler(songs, 8192, seed=3, gain_range_db=0.0)
    mixed = ExcerptSampler(songs, 8192, seed=3, gain_range_db=0.0,
                           effects=StemEffects(("mixup",), SOURCES, RATE, seed=0))
    for _ in range(4):
        before, after = plain.batch(1)[0], mixed.batch(1)[0]
        # independent noise added: about twice the energy, in every stem
        assert all(np.square(after[s]).sum() > 1.5 * np.square(before[s]).sum() for s in range(4))


def test_band_limited_examples_keep_their_band(monkeypatch):
    calls = []
    monkeypatch.setattr(StemEffects, "__call__", lambda self, stems: calls.append(1) or stems)
    narrow = ExcerptSampler([noise_song("a", 0, band_hz=8000.0)], 4096, seed=0,
                            effects=StemEffects(("pitch",), SOURCES, RATE, seed=0))
    narrow.batch(4)
    assert calls == []
    wide = ExcerptSampler([noise_song("a", 0)], 4096, seed=0, effects=StemEffects(("pitch",), SOURCES, RATE, seed=0))
    wide.batch(4)
    assert len(calls) == 4


def test_the_config_refuses_an_unknown_family():
    assert TrainConfig(augment=("pitch", "limiter")).augment == ("pitch", "limiter")
    with pytest.raises(ConfigError, match="train.augment: unknown wah"):
        TrainConfig(augment=("pitch", "wah"))


def test_each_loader_worker_draws_its_own_effects_reproducibly():
    from stems.train import excerpt_batches

    songs = [noise_song("a", 0), noise_song("b", 1)]

    def first(count=2):
        sampler = ExcerptSampler(songs, 4096, seed=0, effects=StemEffects(("eq", "saturation"), SOURCES, RATE, seed=0))
        batches = excerpt_batches(sampler, 3, 2, (0, 0, 0))
        return [next(batches)[0].numpy() for _ in range(count)]

    plain = excerpt_batches(ExcerptSampler(songs, 4096, seed=0), 3, 2, (0, 0, 0))
    drawn, untreated = first(), [next(plain)[0].numpy() for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(drawn, first()))  # seeded per worker
    assert not any(np.array_equal(a, b) for a, b in zip(drawn, untreated))  # the effects ran in the workers


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_an_mp3_roundtrip_is_aligned_as_long_and_closer_at_a_higher_bit_rate():
    music = synth(3.0, seed=4)
    errors = {}
    for kbps in (64, 256):
        decoded = mp3_roundtrip(music, kbps, RATE)
        assert decoded.shape == music.shape and decoded.dtype == np.float32
        # aligned: the decoded copy correlates best with the input at lag 0, not at LAME's 1105 samples
        lags = range(-1200, 1201, 5)
        middle = slice(RATE // 2, 2 * RATE)
        scores = [np.dot(music[0, middle], np.roll(decoded[0], -lag)[middle]) for lag in lags]
        assert list(lags)[int(np.argmax(scores))] == 0
        errors[kbps] = float(np.square(decoded - music).sum() / np.square(music).sum())
    assert errors[256] < errors[64] < 0.1  # a lossy copy, the closer the more bits it keeps


def test_the_codec_alters_only_the_mix_the_network_hears(monkeypatch):
    monkeypatch.setattr(augment, "CODEC_PROBABILITY", 1.0)
    monkeypatch.setattr(augment, "mp3_roundtrip", lambda audio, kbps, rate: 0.5 * audio)  # an error of -mix/2
    songs = [noise_song("a", 0), noise_song("b", 1)]
    plain = ExcerptSampler(songs, 4096, seed=3)
    coded = ExcerptSampler(songs, 4096, seed=3, effects=StemEffects(("codec",), SOURCES, RATE, seed=0))
    stems, _, _, errors = coded.draw(4)
    np.testing.assert_array_equal(stems, plain.batch(4))  # the targets stay the clean stems
    np.testing.assert_allclose(errors, -0.5 * stems.sum(axis=1), atol=1e-6)
    assert not plain.draw(2)[3].any()  # no codec: no error
    narrow = ExcerptSampler([noise_song("c", 2, band_hz=8000.0)], 4096, seed=3,
                            effects=StemEffects(("codec",), SOURCES, RATE, seed=0))
    assert not narrow.draw(3)[3].any()  # a band-limited mix gets none: it would fill the bins the loss ignores


def test_the_codec_is_drawn_at_its_probability_from_the_effects_stream(monkeypatch):
    calls = []
    monkeypatch.setattr(augment, "mp3_roundtrip", lambda audio, kbps, rate: calls.append(kbps) or audio)
    effects = StemEffects(("codec",), SOURCES, RATE, seed=0)
    mix = np.full((2, 1024), 0.1, np.float32)
    for _ in range(2000):
        effects.codec_error(mix)
    assert 0.21 < len(calls) / 2000 < 0.29 and set(calls) <= set(augment.CODEC_KBPS)
    assert StemEffects(("eq",), SOURCES, RATE, seed=0).codec_error(mix) is None
