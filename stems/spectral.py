"""STFT and overlap-add iSTFT on native complex tensors, over arbitrary frame ranges.

Frame t of a signal x of length N is centred on sample t * hop_length and sees x zero-padded
outside [0, N) (torch.stft with center=True, pad_mode="constant"); frames 0 .. T-1 exist, with
T = ceil(N / hop_length) + 1, one more than torch when N is not a multiple of the hop, so that the
last samples are always covered by two windows and the overlap-add never divides by a vanishing
window envelope. Computing any frame range from the samples it covers, and overlap-adding
any frame range back, gives exactly what a one-pass transform of the whole signal gives: this is
what lets the separator work in chunks whose result equals the one-pass result.
"""

from __future__ import annotations

import math

import torch

from .config import STFTConfig


def n_frames(n_samples: int, stft: STFTConfig) -> int:
    return -(-n_samples // stft.hop_length) + 1


def window(stft: STFTConfig, device: torch.device | None = None) -> torch.Tensor:
    return torch.hann_window(stft.n_fft, periodic=True, device=device)


def frame_span(first: int, last: int, stft: STFTConfig) -> tuple[int, int]:
    """Sample range [start, stop) covered by frames first .. last-1."""
    half = stft.n_fft // 2
    return first * stft.hop_length - half, (last - 1) * stft.hop_length + half


def stft_frames(samples: torch.Tensor, stft: STFTConfig) -> torch.Tensor:
    """STFT of samples that already hold each frame's full support.

    Args:
        samples: (..., samples) real, exactly `frame_span(first, last)` long.
    Returns:
        (..., bins, last - first) complex.
    """
    shape = samples.shape[:-1]
    flat = samples.reshape(-1, samples.shape[-1])
    spec = torch.stft(
        flat, stft.n_fft, stft.hop_length, window=window(stft, samples.device),
        center=False, return_complex=True,
    )
    return spec.reshape(*shape, *spec.shape[-2:])


def stft(signal: torch.Tensor, stft: STFTConfig) -> torch.Tensor:
    """(..., samples) real -> (..., bins, frames) complex, all T frames of the signal."""
    half = stft.n_fft // 2
    padded = torch.nn.functional.pad(signal, (half, half + stft.hop_length))
    count = n_frames(signal.shape[-1], stft)
    return stft_frames(padded[..., : (count - 1) * stft.hop_length + stft.n_fft], stft)


def overlap_add(spec: torch.Tensor, first: int, total_frames: int, stft: STFTConfig) -> tuple[torch.Tensor, int]:
    """Inverse STFT of frames first .. first+F-1, normalised by the window envelope of the frames
    of the whole signal (indices 0 .. total_frames-1) that cover each sample.

    Args:
        spec: (..., bins, F) complex; frames whose index lies outside [0, total_frames) are ignored.
    Returns:
        (..., samples) real and the index of its first sample in the signal. Only samples that
        every covering frame of the whole signal contributes to are exact: those from
        `first * hop + n_fft/2` up to `(first + F - 1) * hop - n_fft/2`, plus the signal's ends.
    """
    hop, n_fft = stft.hop_length, stft.n_fft
    count = spec.shape[-1]
    valid = torch.zeros(count, dtype=torch.bool, device=spec.device)
    valid[max(0, -first): max(0, min(count, total_frames - first))] = True
    win = window(stft, spec.device)
    frames = torch.fft.irfft(spec.transpose(-1, -2), n=n_fft) * (win * valid[:, None])  # (..., F, n_fft)
    out = _fold(frames, hop)
    envelope = _fold((win**2) * valid[:, None].to(win.dtype), hop)
    out = out / torch.where(envelope > 1e-11, envelope, torch.ones_like(envelope))
    return out, first * hop - n_fft // 2


def _fold(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add (..., F, n_fft) frames spaced `hop` apart -> (..., (F - 1) * hop + n_fft).

    With n_fft a multiple of hop this is n_fft / hop shifted additions of contiguous slabs,
    measured 8x faster than torch's fold (col2im) on 2 cores.
    """
    count, n_fft = frames.shape[-2:]
    parts = n_fft // hop
    slabs = frames.reshape(*frames.shape[:-1], parts, hop)
    out = frames.new_zeros(*frames.shape[:-2], (count - 1) * hop + n_fft)
    for j in range(parts):
        out[..., j * hop: j * hop + count * hop] += slabs[..., j, :].reshape(*frames.shape[:-2], count * hop)
    return out


def istft(spec: torch.Tensor, length: int, stft: STFTConfig) -> torch.Tensor:
    """(..., bins, T) complex of a whole signal -> (..., length) real."""
    out, start = overlap_add(spec, 0, spec.shape[-1], stft)
    return out[..., -start: -start + length]


def context_frames_needed(stft: STFTConfig) -> int:
    """Frames on each side of a sample range whose windows reach into it."""
    return math.ceil((stft.n_fft // 2) / stft.hop_length)
