"""STFT and overlap-add iSTFT in numpy, over arbitrary frame ranges.

Frame t of a signal x of length N is centred on sample t * hop_length and sees x zero-padded
outside [0, N) (torch.stft with center=True, pad_mode="constant"); frames 0 .. T-1 exist, with
T = ceil(N / hop_length) + 1, one more than torch when N is not a multiple of the hop, so that the
last samples are always covered by two windows and the overlap-add never divides by a vanishing
window envelope. Computing any frame range from the samples it covers, and overlap-adding
any frame range back, gives exactly what a one-pass transform of the whole signal gives: this is
what lets the separator work in chunks whose result equals the one-pass result.

Training, evaluation and inference all use these functions (training converts the spectra to
torch tensors), so the frame arithmetic exists once.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .config import STFTConfig


def n_frames(n_samples: int, stft: STFTConfig) -> int:
    return -(-n_samples // stft.hop_length) + 1


@functools.lru_cache(maxsize=8)
def window(stft: STFTConfig) -> np.ndarray:
    """(n_fft,) float32 periodic Hann window (torch.hann_window's default), read-only."""
    n = stft.n_fft
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
    win.flags.writeable = False
    return win


@functools.lru_cache(maxsize=8)
def _analysis_window(stft: STFTConfig) -> np.ndarray:
    """The window times n_fft, for `rfft(..., norm="forward")`, which divides by n_fft: together
    the unnormalised STFT. (NumPy runs a float32 rfft in single precision only with a norm other
    than "backward", whose integer factor promotes the transform to float64: 4x the time.)"""
    win = window(stft) * np.float32(stft.n_fft)
    win.flags.writeable = False
    return win


def frame_span(first: int, last: int, stft: STFTConfig) -> tuple[int, int]:
    """Sample range [start, stop) covered by frames first .. last-1."""
    half = stft.n_fft // 2
    return first * stft.hop_length - half, (last - 1) * stft.hop_length + half


def stft_frames(samples: np.ndarray, stft: STFTConfig) -> np.ndarray:
    """STFT of samples that already hold each frame's full support.

    Args:
        samples: (..., samples) float32, exactly `frame_span(first, last)` long.
    Returns:
        (..., bins, last - first) complex64.
    """
    hop, n_fft = stft.hop_length, stft.n_fft
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft, axis=-1)[..., ::hop, :]
    spec = np.fft.rfft(frames * _analysis_window(stft), axis=-1, norm="forward").astype(np.complex64, copy=False)
    return np.ascontiguousarray(np.swapaxes(spec, -1, -2))


def stft(signal: np.ndarray, stft: STFTConfig) -> np.ndarray:
    """(..., samples) float -> (..., bins, frames) complex64, all T frames of the signal."""
    half = stft.n_fft // 2
    count = n_frames(signal.shape[-1], stft)
    padded = np.zeros((*signal.shape[:-1], (count - 1) * stft.hop_length + stft.n_fft), dtype=np.float32)
    padded[..., half: half + signal.shape[-1]] = signal[..., : padded.shape[-1] - half]
    return stft_frames(padded, stft)


# Frames inverse-transformed and added at a time: the whole chunk's frames at once (3 stems x 2
# channels x 256 frames x 2048 samples, 12 MB) fall out of cache between the inverse FFT, the
# window and the sum; blocks of 16 frames took 0.63x the time at n_fft 2048, 0.56x at 4096
# (docs/experiments.md, session 20).
OVERLAP_ADD_BLOCK = 16


def overlap_add(spec: np.ndarray, first: int, total_frames: int, stft: STFTConfig) -> tuple[np.ndarray, int]:
    """Inverse STFT of frames first .. first+F-1, normalised by the window envelope of the frames
    of the whole signal (indices 0 .. total_frames-1) that cover each sample.

    Args:
        spec: (..., bins, F) complex; frames whose index lies outside [0, total_frames) are ignored.
    Returns:
        (..., samples) float32 and the index of its first sample in the signal. Only samples that
        every covering frame of the whole signal contributes to are exact: those from
        `first * hop + n_fft/2` up to `(first + F - 1) * hop - n_fft/2`, plus the signal's ends.
    """
    hop, n_fft = stft.hop_length, stft.n_fft
    count = spec.shape[-1]
    valid = np.zeros(count, dtype=np.float32)
    valid[max(0, -first): max(0, min(count, total_frames - first))] = 1.0
    win = window(stft)
    out = np.zeros((*spec.shape[:-2], (count - 1) * hop + n_fft), dtype=np.float32)
    for k in range(0, count, OVERLAP_ADD_BLOCK):  # a block's frames stay in cache from irfft to sum
        block = np.swapaxes(spec[..., k: k + OVERLAP_ADD_BLOCK], -1, -2)
        frames = np.fft.irfft(block, n=n_fft, axis=-1).astype(np.float32, copy=False)
        np.multiply(frames, win * valid[k: k + OVERLAP_ADD_BLOCK, None], out=frames)  # (..., B, n_fft)
        piece = _fold(frames, hop)
        out[..., k * hop: k * hop + piece.shape[-1]] += piece
    envelope = _fold((win**2) * valid[:, None], hop)
    out /= np.where(envelope > 1e-11, envelope, 1.0)
    return out, first * hop - n_fft // 2


def _fold(frames: np.ndarray, hop: int) -> np.ndarray:
    """Overlap-add (..., F, n_fft) frames spaced `hop` apart -> (..., (F - 1) * hop + n_fft).

    With n_fft a multiple of hop the output is F + n_fft/hop - 1 blocks of `hop` samples, and
    each of the n_fft/hop slabs of every frame adds into one block: n_fft/hop shifted additions."""
    count, n_fft = frames.shape[-2:]
    lead = frames.shape[:-2]
    parts = n_fft // hop
    slabs = frames.reshape(*lead, count, parts, hop)
    out = np.zeros((*lead, count + parts - 1, hop), dtype=np.float32)
    for j in range(parts):
        out[..., j: j + count, :] += slabs[..., j, :]
    return out.reshape(*lead, (count + parts - 1) * hop)


def istft(spec: np.ndarray, length: int, stft: STFTConfig) -> np.ndarray:
    """(..., bins, T) complex of a whole signal -> (..., length) float32."""
    out, start = overlap_add(spec, 0, spec.shape[-1], stft)
    return out[..., -start: -start + length]


def context_frames_needed(stft: STFTConfig) -> int:
    """Frames on each side of a sample range whose windows reach into it."""
    return math.ceil((stft.n_fft // 2) / stft.hop_length)
