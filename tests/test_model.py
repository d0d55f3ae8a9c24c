import copy

import pytest
import torch

from stems.config import ModelConfig, STFTConfig
from stems.model import MaskNet, TimeCaches

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


@pytest.mark.parametrize("lookahead", [-1, 1])
def test_one_pass_equals_frame_by_frame_sliding_window(lookahead):
    """The article slides a window one frame at a time and keeps the centre frame's mask; the
    valid-in-time network computes all of those windows in one pass."""
    model = make_model(seed=3, lookahead_frames=lookahead)
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


def streamed(model, mag: torch.Tensor, splits) -> torch.Tensor:
    """Logits of `mag` pushed through the forward with time caches, in the given pieces, from
    caches after an endless silence (zero magnitudes); the first `lookahead` outputs (frames
    before the signal) dropped."""
    silence = torch.zeros(1, 2, model.n_bins, model.window_frames)
    caches = TimeCaches([torch.zeros(shape) for shape in model.state_shapes()])
    model(silence, caches)
    outputs = []
    with torch.no_grad():
        for a, b in splits:
            caches = TimeCaches(caches.outgoing)
            outputs.append(model(mag[..., a:b], caches))
        if model.lookahead:  # silence after the end
            outputs.append(model(torch.zeros(1, 2, model.n_bins, model.lookahead), TimeCaches(caches.outgoing)))
    return torch.cat(outputs, dim=-1)[..., model.lookahead:]


@pytest.mark.parametrize("lookahead", [-1, 1, 0])
def test_streaming_with_time_caches_equals_one_pass_for_any_split(lookahead):
    """Each time-valid layer keeps the last frames of its input: any split of the frames gives the
    one-pass logits of the signal with silence around it, as the offline pipeline pads it."""
    model = make_model(seed=4, lookahead_frames=lookahead)
    mag = torch.rand(1, 2, 1025, 40) * 2
    with torch.no_grad():
        whole = model(torch.nn.functional.pad(mag, (model.past, model.lookahead)))
        for splits in (((0, 1), (1, 9), (9, 10), (10, 23), (23, 40)), ((0, 40),), tuple((t, t + 1) for t in range(40))):
            pieces = streamed(model, mag, splits)
            assert pieces.shape == whole.shape
            assert torch.allclose(pieces, whole, atol=1e-5)


def test_zero_frame_caches_give_the_offline_forward():
    """The exported graph always takes caches: with zero frames in each it is the offline forward."""
    model = make_model(seed=5)
    mag = torch.rand(1, 2, 1025, 25)
    empty = [torch.zeros(*shape[:-1], 0) for shape in model.state_shapes()]
    caches = TimeCaches(empty)
    with torch.no_grad():
        assert torch.equal(model(mag, caches), model(mag))
    assert [tuple(c.shape) for c in caches.outgoing] == model.state_shapes()


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
