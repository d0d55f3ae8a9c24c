"""The one reconstruction stage: masks times the mix STFT, inverse STFT, every stem.

Every writer (offline files, two-stem, subsets, streaming) goes through `reconstruct`. Outputs are
groups of sources (e.g. "no_vocals" = drums + bass + other). When the groups cover every source,
the last group is the mix minus the others: it costs nothing, and the stems add up to the mix
exactly.
"""

from __future__ import annotations

import numpy as np

from . import spectral
from .config import STFTConfig


def output_groups(sources: tuple[str, ...], stems: tuple[str, ...] | None = None,
                  two_stems: str | None = None) -> dict[str, tuple[int, ...]]:
    """Output name -> source indices, in source order.

    `stems` names the outputs: a source, or `no_<source>`, every other source summed (`no_vocals`
    is the instrumental); default: every source. `two_stems` is short for (stem, no_<stem>).
    """
    if two_stems is not None:
        if stems is not None:
            raise ValueError("give stems or two_stems, not both")
        if two_stems not in sources:
            raise ValueError(f"unknown stem '{two_stems}' (choose from {', '.join(sources)})")
        stems = (two_stems, f"no_{two_stems}")
    chosen = stems or sources
    known = [name for source in sources for name in (source, f"no_{source}")]
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ValueError(f"unknown stem(s) {', '.join(unknown)} (choose from {', '.join(sources)}, "
                         "or no_<stem> for all the others)")
    return {name: (sources.index(name),) if name in sources else
            tuple(i for i, source in enumerate(sources) if name != f"no_{source}")
            for name in known if name in chosen}


def apply_mask(mix_spec: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(..., channels, bins, frames) complex64 times a real float32 mask broadcast to it, computed
    on the real view (a real-to-complex promotion costs several times more)."""
    pairs = np.ascontiguousarray(mix_spec).view(np.float32).reshape(*mix_spec.shape, 2)
    return np.ascontiguousarray(pairs * mask[..., None]).view(np.complex64)[..., 0]


def covers_all_sources(groups: dict[str, tuple[int, ...]], n_sources: int) -> bool:
    """Whether the groups together take every source exactly once (then the last group can be
    the mix minus the others)."""
    return sorted(i for indices in groups.values() for i in indices) == list(range(n_sources))


def reconstruct(
    mix_spec: np.ndarray,
    masks: np.ndarray,
    groups: dict[str, tuple[int, ...]],
    first_frame: int,
    total_frames: int,
    stft: STFTConfig,
    mix_samples: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Waveforms of each group of sources for a range of frames.

    Args:
        mix_spec: (channels, bins, frames) complex mix STFT of frames first_frame .. first_frame+frames-1.
        masks: (sources, channels, bins, frames) real masks that sum to one over sources.
        groups: output name -> indices of the sources it sums.
        total_frames: frames of the whole signal (frames outside [0, total_frames) are ignored).
        mix_samples: (channels, samples) the mix over the same samples the overlap-add returns;
            when given and `groups` covers every source, the last group is the mix minus the rest.
    Returns:
        ({name: (channels, samples) float32}, index of the first sample), see `spectral.overlap_add`.
    """
    names = list(groups)
    residual = mix_samples is not None and covers_all_sources(groups, masks.shape[0]) and len(names) > 1
    direct = names[:-1] if residual else names
    group_masks = np.stack([masks[list(groups[name])].sum(axis=0) for name in direct])
    stem_specs = apply_mask(mix_spec[None], group_masks)
    waves, start = spectral.overlap_add(stem_specs, first_frame, total_frames, stft)
    out = dict(zip(direct, waves))
    if residual:
        out[names[-1]] = mix_samples - waves.sum(axis=0)
    return out, start
