import numpy as np
import pytest
import torch

from stems import spectral
from stems.config import STFTConfig

STFT = STFTConfig()


@pytest.mark.parametrize("length", [1, 100, 2047, 2048, 44100, 44100 * 3 + 17])
def test_stft_istft_round_trip(length):
    signal = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    spec = spectral.stft(signal, STFT)
    assert spec.shape == (2, STFT.n_bins, -(-length // STFT.hop_length) + 1) and spec.dtype == np.complex64
    assert np.abs(spectral.istft(spec, length, STFT) - signal).max() < 1e-5


def test_matches_torch_stft_and_istft():
    """An independent implementation: torch's centred STFT and its inverse."""
    signal = torch.randn(2, 30 * STFT.hop_length)  # torch and we agree on the frame count here
    window = torch.hann_window(STFT.n_fft)
    ref = torch.stft(signal, STFT.n_fft, STFT.hop_length, window=window, center=True, pad_mode="constant",
                     return_complex=True)
    spec = spectral.stft(signal.numpy(), STFT)
    assert np.abs(spec - ref.numpy()).max() < 1e-4
    back = torch.istft(ref, STFT.n_fft, STFT.hop_length, window=window, length=signal.shape[-1])
    assert np.abs(spectral.istft(spec, signal.shape[-1], STFT) - back.numpy()).max() < 1e-5


def test_frames_from_any_range_equal_whole_signal_frames():
    signal = np.random.default_rng(0).standard_normal((1, 20000)).astype(np.float32)
    whole = spectral.stft(signal, STFT)
    first, last = 3, 11
    start, stop = spectral.frame_span(first, last, STFT)
    part = spectral.stft_frames(signal[:, start:stop], STFT)
    assert np.abs(part - whole[..., first:last]).max() < 1e-4
