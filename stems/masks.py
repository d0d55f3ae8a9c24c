"""Masks: the competing masks used at inference and the oracle masks computed from true stems.

The four heads compete at every time-frequency bin: a softmax across stems gives soft masks that
sum to one; its one-hot argmax gives the binary masks of the article ("perceptual binarization":
each bin goes to the stem that dominates it).
"""

from __future__ import annotations

import numpy as np

MASK_KINDS = ("binary", "soft")


def _one_hot_argmax(values: np.ndarray) -> np.ndarray:
    """1 where a bin's value is the largest over the sources axis (-4), else 0."""
    winner = values.argmax(axis=-4)[..., None, :, :, :]
    sources = np.arange(values.shape[-4]).reshape(-1, 1, 1, 1)
    return (winner == sources).astype(np.float32)


GATE_DB = -30.0  # the silence gate's default threshold (docs/experiments.md, session 12)


def inference_masks(logits: np.ndarray, kind: str, mix_spec: np.ndarray | None = None,
                    gate_db: float | None = None) -> np.ndarray:
    """(sources, channels, bins, frames) logits -> float32 masks of the same shape that sum to
    one over the sources axis; with `gate_db` (and the (channels, bins, frames) `mix_spec` of the
    same frames), silence-gated (see the module's docstring). The loudest stem of a frame is never
    gated; -inf gates nothing."""
    masks = _masks(logits, kind)
    if gate_db is None or gate_db == -np.inf:
        return masks
    power = np.abs(mix_spec) ** 2  # (C, F, T)
    energy = np.einsum("scft,cft->st", masks * masks, power)  # each stem's estimate, per frame
    quiet = energy < 10.0 ** (gate_db / 10.0) * power.sum(axis=(0, 1))
    quiet[energy.argmax(axis=0), np.arange(energy.shape[1])] = False
    if not quiet.any():
        return masks
    return _masks(np.where(quiet[:, None, None, :], -np.inf, logits), kind)


def _masks(logits: np.ndarray, kind: str) -> np.ndarray:
    if kind == "soft":
        masks = np.exp(logits - logits.max(axis=-4, keepdims=True))
        masks /= masks.sum(axis=-4, keepdims=True)
        return masks
    if kind == "binary":
        return _one_hot_argmax(logits)
    raise ValueError(f"unknown mask kind '{kind}' (choose from {', '.join(MASK_KINDS)})")


def binary_targets(stem_mags: np.ndarray) -> np.ndarray:
    """Perceptual binarization: (..., sources, channels, bins, frames) stem magnitudes -> one-hot
    of the dominant stem per bin."""
    return _one_hot_argmax(stem_mags)


def ratio_targets(stem_mags: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Ideal ratio masks |S_i| / sum_j |S_j| (sum to one over sources)."""
    return stem_mags / (stem_mags.sum(axis=-4, keepdims=True) + eps)
