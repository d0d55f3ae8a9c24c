"""The one reconstruction stage: masks times the mix STFT, inverse STFT, every stem.

Every writer (offline files, two-stem, subsets, streaming) goes through `reconstruct`. Outputs are
groups of sources (e.g. "no_vocals" = drums + bass + other). When the groups cover every source,
the last group is the mix minus the others: it costs nothing, and the stems add up to the mix
exactly.
"""

from __future__ import annotations

import torch

from . import spectral
from .config import STFTConfig


def apply_mask(mix_spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(channels, bins, frames) complex times a real mask of the same shape, computed on the
    real view (a real-to-complex promotion costs several times more)."""
    return torch.view_as_complex(torch.view_as_real(mix_spec) * mask[..., None])


def covers_all_sources(groups: dict[str, tuple[int, ...]], n_sources: int) -> bool:
    """Whether the groups together take every source exactly once (then the last group can be
    the mix minus the others)."""
    return sorted(i for indices in groups.values() for i in indices) == list(range(n_sources))


def reconstruct(
    mix_spec: torch.Tensor,
    masks: torch.Tensor,
    groups: dict[str, tuple[int, ...]],
    first_frame: int,
    total_frames: int,
    stft: STFTConfig,
    mix_samples: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], int]:
    """Waveforms of each group of sources for a range of frames.

    Args:
        mix_spec: (channels, bins, frames) complex mix STFT of frames first_frame .. first_frame+frames-1.
        masks: (sources, channels, bins, frames) real masks that sum to one over sources.
        groups: output name -> indices of the sources it sums.
        total_frames: frames of the whole signal (frames outside [0, total_frames) are ignored).
        mix_samples: (channels, samples) the mix over the same samples the overlap-add returns;
            when given and `groups` covers every source, the last group is the mix minus the rest.
    Returns:
        ({name: (channels, samples)}, index of the first sample), see `spectral.overlap_add`.
    """
    names = list(groups)
    residual = mix_samples is not None and covers_all_sources(groups, masks.shape[0]) and len(names) > 1
    direct = names[:-1] if residual else names
    group_masks = torch.stack([masks[list(groups[name])].sum(dim=0) for name in direct])
    stem_specs = apply_mask(mix_spec.unsqueeze(0), group_masks)
    waves, start = spectral.overlap_add(stem_specs, first_frame, total_frames, stft)
    out = dict(zip(direct, waves))
    if residual:
        out[names[-1]] = mix_samples - waves.sum(dim=0)
    return out, start
