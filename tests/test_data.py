"""The training sampler: seeded excerpts, augmentation bounds, resumable state."""

import numpy as np
import pytest

from stems.data import ExcerptSampler, Song

RATE = 44100


def sine_song(name: str, frequency: float, seconds: float = 3.0) -> Song:
    """Every stem the same sine (so any misalignment between stems shows), stereo."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = np.sin(2 * np.pi * frequency * t).astype(np.float32)
    return Song(name, np.broadcast_to(wave, (4, 2, wave.size)).copy())


def peak_frequency(wave: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.argmax(spectrum) * RATE / wave.size)


def test_same_seed_same_batches_and_state_resumes():
    songs = [sine_song("a", 440.0), sine_song("b", 660.0)]
    first = ExcerptSampler(songs, 8192, seed=3, speed_range=0.1)
    second = ExcerptSampler(songs, 8192, seed=3, speed_range=0.1)
    np.testing.assert_array_equal(first.batch(4), second.batch(4))
    state = first.state()
    expected = first.batch(4)
    second.set_state(state)
    np.testing.assert_array_equal(second.batch(4), expected)


def test_gain_stays_within_range_and_stems_of_one_song_stay_aligned():
    sampler = ExcerptSampler([sine_song("a", 440.0)], 8192, seed=0, remix_probability=0.0, gain_range_db=6.0)
    for example in sampler.batch(16):
        peaks = np.abs(example).max(axis=-1)  # (sources, channels)
        assert np.all(peaks > 10 ** (-6.01 / 20) * 0.99) and np.all(peaks < 10 ** (6.01 / 20) * 1.01)
        unit = example / peaks[..., None]
        np.testing.assert_allclose(unit, np.broadcast_to(unit[0, 0], unit.shape), atol=1e-5)


def test_speed_change_moves_pitch_within_range_and_keeps_stems_in_time():
    sampler = ExcerptSampler([sine_song("a", 1000.0)], 16384, seed=1, remix_probability=0.0, gain_range_db=0.0,
                             speed_range=0.1)
    frequencies = []
    for example in sampler.batch(24):
        assert example.shape == (4, 2, 16384) and example.dtype == np.float32
        np.testing.assert_allclose(example, np.broadcast_to(example[0, 0], example.shape), atol=1e-5)
        frequencies.append(peak_frequency(example[0, 0]))
    resolution = RATE / 16384
    assert min(frequencies) >= 900 - resolution and max(frequencies) <= 1100 + resolution
    assert max(frequencies) - min(frequencies) > 60  # the speeds really vary


def test_no_speed_change_reads_the_song_untouched():
    song = sine_song("a", 440.0)
    sampler = ExcerptSampler([song], 4096, seed=0, remix_probability=0.0, gain_range_db=0.0)
    example = sampler.batch(1)[0]
    # a plain slice of the song (up to the random channel swap, a no-op on identical channels)
    starts = [i for i in range(song.samples - 4096 + 1) if np.array_equal(song.stems[0, 0, i: i + 4096], example[0, 0])]
    assert starts


def test_bad_speed_range_and_too_short_songs_are_refused():
    with pytest.raises(ValueError, match="speed_range"):
        ExcerptSampler([sine_song("a", 440.0)], 4096, seed=0, speed_range=0.7)
    with pytest.raises(Exception, match="longer than one excerpt"):
        ExcerptSampler([sine_song("a", 440.0, seconds=0.1)], 4096, seed=0, speed_range=0.1)


def test_remixing_never_draws_a_silent_stem_while_another_song_has_it():
    voiced = sine_song("voiced", 440.0)
    instrumental = sine_song("instrumental", 660.0, seconds=6.0)  # the heavier song in the draw
    instrumental.stems[3] = 0.0  # vocals: silence, as in a synthetic song without a singer
    sampler = ExcerptSampler([voiced, instrumental], 4096, seed=0, remix_probability=1.0, gain_range_db=0.0)
    batch = sampler.batch(32)  # (examples, sources, channels, samples)
    assert np.abs(batch[:, 3]).max(axis=(1, 2)).min() > 0.5
    drums_from = {min((440.0, 660.0), key=lambda f: abs(f - peak_frequency(example[0, 0]))) for example in batch}
    assert drums_from == {440.0, 660.0}  # the instrumental song still lends its drums


def test_a_stem_silent_in_every_song_stays_silent():
    songs = [sine_song("a", 440.0), sine_song("b", 660.0)]
    for song in songs:
        song.stems[1] = 0.0  # no bass anywhere
    batch = ExcerptSampler(songs, 4096, seed=0, remix_probability=1.0).batch(8)
    assert np.abs(batch[:, 1]).max() == 0.0


@pytest.mark.parametrize("cap, expected", [(30.0, [7 / 37, 30 / 37]), (1e6, [7 / 67, 60 / 67]), (1e-3, [0.5, 0.5])])
def test_songs_are_drawn_by_length_up_to_the_cap(cap, expected):
    songs = [sine_song("preview", 440.0, seconds=7.0), sine_song("song", 660.0, seconds=60.0)]
    sampler = ExcerptSampler(songs, 4096, seed=0, weight_cap_s=cap)
    np.testing.assert_allclose(sampler.weights, expected)


def constant_song(name: str, values: tuple[float, ...], seconds: float = 1.0) -> Song:
    """Each stem a constant (the song's signature), 0 for a stem the song lacks."""
    stems = np.ones((4, 2, int(seconds * RATE)), np.float32) * np.array(values, np.float32)[:, None, None]
    return Song(name, stems)


def test_a_song_lacking_a_stem_takes_it_from_another_song_with_fill_missing():
    no_vocals = constant_song("rendered", (0.1, 0.1, 0.1, 0.0))
    singer = constant_song("real", (0.2, 0.2, 0.2, 0.3))
    for fill in (False, True):
        sampler = ExcerptSampler([no_vocals, singer], 4096, seed=0, remix_probability=0.0, gain_range_db=0.0,
                                 fill_missing=fill)
        batch = sampler.batch(64)
        from_rendered = np.isclose(batch[:, 0, 0, 0], 0.1)
        assert 10 < from_rendered.sum() < 54  # both songs are drawn
        vocals = batch[from_rendered, 3, 0, 0]
        if fill:  # the rendered song's drums with the only vocals there are
            np.testing.assert_allclose(vocals, 0.3)
        else:
            np.testing.assert_array_equal(vocals, 0.0)
        np.testing.assert_allclose(batch[~from_rendered, 3, 0, 0], 0.3)


def test_rendered_songs_make_their_share_of_the_draws_of_each_stem_they_have():
    real = [constant_song(f"real{i}", (0.1 + i / 100, 0.5, 0.5, 0.5), seconds=1.0) for i in range(3)]
    rendered = [constant_song(f"rendered{i}", (0.9, 0.9, 0.9, 0.0), seconds=40.0) for i in range(5)]
    sampler = ExcerptSampler(real, 4096, seed=1, remix_probability=0.5, gain_range_db=0.0, rendered=rendered,
                             rendered_share=0.25)
    batch = sampler.batch(2000)
    share = np.isclose(batch[:, 0, 0, 0], 0.9).mean()
    assert abs(share - 0.25) < 0.03  # not 5 x 30 s against 3 x 1 s
    # silent vocals only where a whole rendered song is drawn (half the draws, a quarter of them):
    # a remix takes its vocals from the songs that have some
    assert abs(np.isclose(batch[:, 3, 0, 0], 0.0).mean() - 0.125) < 0.03
    with pytest.raises(ValueError, match="rendered_share"):
        ExcerptSampler(real, 4096, seed=1, rendered=rendered, rendered_share=1.0)


def test_the_vocals_level_is_drawn_from_its_range_against_the_rest():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((4, 2, 3 * RATE)).astype(np.float32) * np.array([0.3, 0.2, 0.1, 0.05])[:, None, None]
    silent_vocals = noise.copy()
    silent_vocals[3] = 0
    sampler = ExcerptSampler([Song("a", noise)], 8192, seed=0, remix_probability=0.0, gain_range_db=6.0,
                             level=(3, -20.0, -5.0, 1.0))
    levels = []
    for example in sampler.batch(200):
        rest = example[:3].sum(axis=0)
        levels.append(10 * np.log10(np.square(example[3], dtype=np.float64).sum() / np.square(rest, dtype=np.float64).sum()))
    assert -20.01 < min(levels) < -19 and -6 < max(levels) < -4.99  # uniform over the whole range
    assert abs(np.mean(levels) + 12.5) < 1.0
    quiet = ExcerptSampler([Song("b", silent_vocals)], 8192, seed=0, remix_probability=0.0, level=(3, -20.0, -5.0, 1.0))
    assert not quiet.batch(4)[:, 3].any()  # silence is not scaled into noise


def test_the_vocals_level_is_drawn_in_its_share_of_the_examples_only():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((4, 2, 3 * RATE)).astype(np.float32) * np.array([0.2, 0.2, 0.2, 0.35])[:, None, None]
    sampler = ExcerptSampler([Song("a", noise)], 8192, seed=0, remix_probability=0.0, gain_range_db=0.0,
                             level=(3, -20.0, -15.0, 0.3))
    levels = np.array([10 * np.log10(np.square(example[3], dtype=np.float64).sum()
                                     / np.square(example[:3].sum(axis=0), dtype=np.float64).sum())
                       for example in sampler.batch(300)])
    drawn = levels < -14.99
    assert abs(drawn.mean() - 0.3) < 0.07
    assert levels[drawn].min() > -20.01
    np.testing.assert_allclose(levels[~drawn], 10 * np.log10(0.35 ** 2 / (3 * 0.2 ** 2)), atol=0.3)  # as the song has it


def test_balance_rendered_reads_every_stem_of_a_rendered_song_at_one_energy():
    real = [constant_song("real", (0.2, 0.2, 0.2, 0.2))]
    loud_other = constant_song("rendered", (0.05, 0.1, 0.8, 0.0))
    for balance in (False, True):
        sampler = ExcerptSampler(real, 4096, seed=2, remix_probability=0.0, gain_range_db=0.0, rendered=[loud_other],
                                 rendered_share=0.5, balance_rendered=balance)
        batch = sampler.batch(40)
        rendered = batch[~np.isclose(batch[:, 3, 0, 0], 0.2)]
        assert len(rendered) > 5
        levels = np.abs(rendered[:, :3, 0, 0])
        expected = np.sqrt(np.mean(np.square([0.05, 0.1, 0.8]))) if balance else np.array([0.05, 0.1, 0.8])
        np.testing.assert_allclose(levels, np.broadcast_to(expected, levels.shape), rtol=1e-5)
        np.testing.assert_allclose(np.abs(batch[np.isclose(batch[:, 3, 0, 0], 0.2)]), 0.2, rtol=1e-6)  # real songs as they are
