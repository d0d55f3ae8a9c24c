import numpy as np
import pytest

from stems.config import STFTConfig
from stems.reconstruct import output_groups

from conftest import RATE, make_model, synth, torch_separator


@pytest.fixture(scope="module")
def separator():
    return torch_separator(make_model())


@pytest.mark.parametrize("mask,lookahead", [("binary", -1), ("soft", -1), ("soft", 1)])
def test_chunked_equals_one_pass(mask, lookahead):
    audio = synth(12.3, seed=1)
    model = make_model(lookahead_frames=lookahead)
    one_pass = torch_separator(model, chunk_frames=10_000).separate(audio, RATE, mask=mask)
    assert np.abs(sum(one_pass.values()) - audio).max() < 1e-4
    for chunk_frames in (64, 97):  # the file is several chunks long
        chunked = torch_separator(model, chunk_frames=chunk_frames).separate(audio, RATE, mask=mask)
        for stem in one_pass:
            assert np.abs(chunked[stem] - one_pass[stem]).max() < 1e-5


@pytest.mark.parametrize("lookahead,channels", [(-1, 2), (1, 2), (-1, 1)])
def test_shifts_average_the_separations_of_the_delayed_signal(lookahead, channels):
    """shifts=N: the mean over k < N of separating the signal delayed by k·hop/N samples and
    advancing the stems again, computed here by padding the signal, chunk by chunk or not."""
    audio = synth(9.1, seed=3)[:channels]
    model = make_model(lookahead_frames=lookahead)
    expected = {}
    for delay in (0, 341, 683):  # round(k * 1024 / 3)
        delayed = np.pad(audio, ((0, 0), (delay, 0)))
        for stem, wave in torch_separator(model).separate(delayed, RATE, mask="soft").items():
            expected[stem] = expected.get(stem, 0) + wave[:, delay:] / 3
    for chunk_frames in (50, 10_000):
        shifted = torch_separator(model, chunk_frames=chunk_frames, shifts=3).separate(audio, RATE, mask="soft")
        for stem in expected:
            assert shifted[stem].shape == audio.shape
            assert np.abs(shifted[stem] - expected[stem]).max() < 1e-5
        assert np.abs(sum(shifted.values()) - audio).max() < 1e-4
    unshifted = torch_separator(model).separate(audio, RATE, mask="soft")
    assert np.abs(shifted["vocals"] - unshifted["vocals"]).max() > 1e-3  # the delays change the frame grid


def test_shifts_are_checked():
    for bad in (0, 1025):
        with pytest.raises(ValueError, match=f"shifts must be between 1 and the hop length \\(1024\\), got {bad}"):
            torch_separator(make_model(), shifts=bad)
    with pytest.raises(ValueError, match="gate_db must be a level in dB or -inf \\(off\\), got nan"):
        torch_separator(make_model(), gate_db=float("nan"))


def test_one_pass_masks_are_the_sliding_window_masks_of_each_frame():
    """Frame t's mask comes from the window of frames t-past .. t+lookahead, whatever the split."""
    import torch

    from stems import spectral

    model = make_model(lookahead_frames=2)
    assert (model.past, model.lookahead) == (10, 2)
    mag = torch.from_numpy(np.abs(spectral.stft(synth(1.0), STFTConfig())))
    padded = torch.nn.functional.pad(mag, (model.past, model.lookahead))
    with torch.no_grad():
        whole = model(padded[None])[0]
        for t in (0, 5, mag.shape[-1] - 1):
            window = padded[..., t: t + model.window_frames]  # frames t - past .. t + lookahead
            assert torch.allclose(model(window[None])[0][..., 0], whole[..., t], atol=1e-5)


@pytest.mark.parametrize("mask", ["binary", "soft"])
def test_stems_add_up_to_the_mix_on_real_music(separator, example_stems, mask):
    audio, _ = example_stems
    mix = audio[0]
    stems = separator.separate(mix, RATE, mask=mask)
    assert set(stems) == {"drums", "bass", "other", "vocals"}
    assert np.abs(sum(stems.values()) - mix).max() < 1e-4
    # every stem gets a real share: the masks compete, they do not hand everything to one stem
    energies = [float((s**2).sum()) for s in stems.values()]
    assert min(energies) > 0


def test_two_stems_and_subsets_use_the_same_masks(separator):
    audio = synth(3.0)
    four = separator.separate(audio, RATE)
    two = separator.separate(audio, RATE, two_stems="vocals")
    assert set(two) == {"vocals", "no_vocals"}
    assert np.abs(two["vocals"] - four["vocals"]).max() < 1e-5
    assert np.abs(two["no_vocals"] - (four["drums"] + four["bass"] + four["other"])).max() < 1e-4
    subset = separator.separate(audio, RATE, stems=("bass", "drums"))
    assert list(subset) == ["drums", "bass"]
    assert np.abs(subset["bass"] - four["bass"]).max() < 1e-5


def test_mono_in_mono_out(separator):
    mono = synth(2.0, channels=1)[0]
    stems = separator.separate(mono, RATE)
    assert all(s.shape == mono.shape for s in stems.values())
    assert np.abs(sum(stems.values()) - mono).max() < 1e-4


def test_other_sample_rates_are_resampled_and_back(separator):
    audio = synth(2.0, rate=22050)
    stems = separator.separate(audio, 22050)
    assert all(s.shape == audio.shape for s in stems.values())
    assert np.abs(sum(stems.values()) - audio).max() < 1e-5


def test_silence_gives_silence(separator):
    stems = separator.separate(np.zeros((2, 50000), dtype=np.float32), RATE)
    assert all(np.isfinite(s).all() and np.abs(s).max() == 0 for s in stems.values())


def test_bad_arguments(separator):
    with pytest.raises(ValueError, match="channels"):
        separator.separate(np.zeros((6, 1000), dtype=np.float32), RATE)
    with pytest.raises(ValueError, match="NaN"):
        separator.separate(np.full((2, 1000), np.nan, dtype=np.float32), RATE)
    with pytest.raises(ValueError, match="unknown stem"):
        output_groups(("drums", "bass"), stems=("piano",))


def test_the_silence_gate_chunked_equals_the_gate_on_the_whole_signal():
    """The gate decides each frame alone: chunks give what gating the masks of the whole signal
    at once gives (computed here from the one-pass STFT, network and overlap-add)."""
    from stems import spectral
    from stems.masks import inference_masks
    from stems.reconstruct import reconstruct

    audio = synth(6.0, seed=3)
    audio[:, RATE * 2: RATE * 4] *= np.linspace(1.0, 0.0, RATE * 2)  # a fade, so that frames differ in level
    separator = torch_separator(make_model(seed=5), chunk_frames=37, gate_db=-10.0)
    engine = separator.engines[0]
    stft = engine.stft
    spec = spectral.stft(audio, stft)
    mag = np.pad(np.abs(spec), ((0, 0), (0, 0), (engine.past, engine.lookahead)))
    masks = inference_masks(engine.logits(mag), "soft", spec, -10.0)
    assert not np.allclose(masks, inference_masks(engine.logits(mag), "soft"))  # the gate did act
    groups = output_groups(separator.sources)
    waves, start = reconstruct(spec, masks, groups, 0, spec.shape[-1], stft)
    chunked = separator.separate(audio, RATE, mask="soft")
    for name in groups:
        assert np.abs(chunked[name] - waves[name][:, -start: -start + audio.shape[-1]]).max() < 1e-4, name
    assert np.abs(sum(chunked.values()) - audio).max() < 1e-4
