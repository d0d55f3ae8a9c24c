"""Masks: the competing masks used at inference and the targets used for training.

The four heads compete at every time-frequency bin: a softmax across stems gives soft masks that
sum to one; its one-hot argmax gives the binary masks of the article ("perceptual binarization":
each bin goes to the stem that dominates it).
"""

from __future__ import annotations

import torch

MASK_KINDS = ("binary", "soft")


def inference_masks(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """(..., sources, channels, bins, frames) logits -> masks of the same shape that sum to one
    over the sources axis (dim -4)."""
    if kind == "soft":
        return torch.softmax(logits, dim=-4)
    if kind == "binary":
        winner = logits.argmax(dim=-4, keepdim=True)
        return torch.zeros_like(logits).scatter_(-4, winner, 1.0)
    raise ValueError(f"unknown mask kind '{kind}' (choose from {', '.join(MASK_KINDS)})")


def binary_targets(stem_mags: torch.Tensor) -> torch.Tensor:
    """Perceptual binarization: (..., sources, channels, bins, frames) stem magnitudes -> one-hot
    of the dominant stem per bin."""
    winner = stem_mags.argmax(dim=-4, keepdim=True)
    return torch.zeros_like(stem_mags).scatter_(-4, winner, 1.0)


def ratio_targets(stem_mags: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Ideal ratio masks |S_i| / sum_j |S_j| (sum to one over sources)."""
    return stem_mags / (stem_mags.sum(dim=-4, keepdim=True) + eps)
