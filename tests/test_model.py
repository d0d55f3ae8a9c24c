import copy

import pytest
import torch

from stems.config import ModelConfig, STFTConfig
from stems.model import MaskNet

from conftest import make_model


def test_context_is_about_300_ms():
    stft = STFTConfig()
    model = MaskNet(ModelConfig(), stft.n_bins)
    seconds = ((model.window_frames - 1) * stft.hop_length + stft.n_fft) / stft.sample_rate
    assert model.window_frames == 13
    assert 0.25 < seconds < 0.35


def test_output_shape():
    model = make_model()
    out = model(torch.rand(2, 2, 1025, 40))
    assert out.shape == (2, 4, 2, 1025, 40 - 2 * model.context)


@pytest.mark.parametrize("band_offsets, freq_dilations", [(False, ()), (True, ()), (False, (1, 2, 3))])
def test_one_pass_equals_frame_by_frame_sliding_window(band_offsets, freq_dilations):
    """The article slides a window one frame at a time and keeps the centre frame's mask; the
    valid-in-time network computes all of those windows in one pass."""
    model = make_model(seed=3, band_offsets=band_offsets, freq_dilations=freq_dilations)
    mag = torch.rand(1, 2, 1025, 30) * 3
    with torch.no_grad():
        one_pass = model(mag)
        width = model.window_frames
        sliding = torch.cat([model(mag[..., t: t + width]) for t in range(30 - width + 1)], dim=-1)
    assert sliding.shape == one_pass.shape
    assert torch.allclose(one_pass, sliding, atol=1e-5)


def test_full_size_default_config_runs():
    model = MaskNet(ModelConfig(widths=(16, 32, 64)), 1025).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 2, 1025, 20)).shape[-1] == 20 - 12


def test_side_input_sees_the_phase_between_channels():
    """Two mixes with the same channel magnitudes, one centred (L = R) and one out of phase
    (L = -R): only the side magnitude |L - R| / 2 tells them apart."""
    model = make_model(seed=5, side_input=True)
    assert model.in_channels == 3
    rng = torch.Generator().manual_seed(0)
    left = torch.randn(1025, 20, generator=rng, dtype=torch.complex64)
    centred, opposed = torch.stack([left, left])[None], torch.stack([left, -left])[None]
    inputs = model.input_magnitudes(centred), model.input_magnitudes(opposed)
    assert inputs[0].shape == (1, 3, 1025, 20)
    assert torch.equal(inputs[0][:, :2], inputs[1][:, :2])
    assert inputs[0][:, 2].abs().max() == 0 and torch.allclose(inputs[1][:, 2], left.abs()[None])
    with torch.no_grad():
        assert model(inputs[0]).shape == (1, 4, 2, 1025, 20 - 2 * model.context)
        assert not torch.allclose(model(inputs[0]), model(inputs[1]))
    assert torch.equal(make_model().input_magnitudes(opposed), opposed.abs())


def test_incremental_network_equals_one_pass_for_any_split():
    from stems.incremental import IncrementalMaskNet

    variants = ((-1, False, False, ()), (1, False, False, ()), (1, True, False, ()), (-1, False, True, ()),
                (1, False, False, (2, 1, 3)))
    for lookahead, side, offsets, freq_dilations in variants:
        model = make_model(seed=4, lookahead_frames=lookahead, side_input=side, band_offsets=offsets,
                           freq_dilations=freq_dilations)
        mag = torch.rand(1, model.in_channels, 1025, 40) * 2
        with torch.no_grad():
            whole = model(mag)
        net = IncrementalMaskNet(model)
        pieces = [net.push(mag[..., a:b]) for a, b in ((0, 1), (1, 9), (9, 10), (10, 23), (23, 40))]
        streamed = torch.cat([p for p in pieces if p is not None], dim=-1)
        assert streamed.shape == whole.shape
        assert torch.allclose(streamed, whole, atol=1e-5)


def test_band_offsets_tell_the_network_where_in_frequency_it_looks():
    """Without offsets the network is translation-equivariant in frequency by multiples of its
    total stride (s² = 16 bins here) away from the edges: a pattern moved up 64 bins gives the
    same logits moved up 64 bins. The learned per-band offsets break that, so the same pattern can
    mean bass low down and something else higher up."""
    pattern = torch.rand(1, 2, 128, 20) * 3
    low, high = torch.ones(1, 2, 1025, 20), torch.ones(1, 2, 1025, 20)
    low[:, :, 384:512], high[:, :, 448:576] = pattern, pattern
    for band_offsets in (False, True):
        model = make_model(seed=6, band_offsets=band_offsets)
        with torch.no_grad():
            model.input_mean.fill_(0.0)
            model.input_scale.fill_(1.0)
            moved = torch.allclose(model(low)[..., 320:640, :], model(high)[..., 384:704, :], atol=1e-5)
        assert moved != band_offsets
    assert {"enc_offset", "down_offset"} <= dict(make_model(band_offsets=True).named_parameters()).keys()
    assert "enc_offset" not in make_model().state_dict()  # checkpoints without offsets load as before


def test_frequency_dilations_widen_the_reach_across_the_spectrum():
    """A change to a few bins in mid-spectrum moves the logits over a span set by the frequency
    receptive field; dilating the coarse blocks in frequency by (1, 2, 3) instead of 1 adds
    (0 + 1 + 2) bands of s² = 16 bins on each side, and leaves the time window as it is."""
    base = torch.rand(1, 2, 1025, 20) * 3
    poked = base.clone()
    poked[:, :, 500:502] += 5.0
    spans = {}
    for freq_dilations in ((), (1, 2, 3)):
        model = make_model(seed=7, freq_dilations=freq_dilations)
        with torch.no_grad():
            changed = (model(poked) - model(base)).abs().amax(dim=(0, 1, 2, 4)) > 1e-6
        bins = changed.nonzero().flatten()
        spans[freq_dilations] = (bins.min().item(), bins.max().item())
        assert model.window_frames == make_model().window_frames
    (low, high), (wide_low, wide_high) = spans[()], spans[(1, 2, 3)]
    assert (low - wide_low, wide_high - high) == (3 * 16, 3 * 16)


def test_folding_batchnorm_keeps_the_outputs():
    model = make_model(widths=(4, 8, 8))
    with torch.no_grad():  # statistics far from the defaults
        for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
    x = torch.rand(1, 2, model.n_bins, 40)
    with torch.no_grad():
        expected = model(x)
        folded = copy.deepcopy(model).fold_batchnorm()
        got = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
