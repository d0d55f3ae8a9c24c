"""Scoring the SiSEC 2018 way: BSSEval v4 (museval) over 1-second windows, median over windows
per track and stem, then median over tracks."""

from __future__ import annotations

import numpy as np

METRICS = ("SDR", "SIR", "ISR", "SAR")


def score_track(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
                sample_rate: int = 44100) -> dict[str, dict[str, float]]:
    """BSSEval v4 of one track.

    Args:
        references, estimates: {stem: (channels, samples)} with the same stems and shapes.
    Returns:
        {stem: {metric: median over 1-s windows (NaN windows, e.g. silent references, ignored)}}.
    """
    import museval

    names = list(references)
    ref = np.stack([references[n].T for n in names]).astype(np.float64)  # (sources, samples, channels)
    est = np.stack([estimates[n].T for n in names]).astype(np.float64)
    values = museval.evaluate(ref, est, win=sample_rate, hop=sample_rate)
    with np.errstate(all="ignore"):
        return {n: {m: float(np.nanmedian(values[k][i])) if np.isfinite(values[k][i]).any() else float("nan")
                    for k, m in enumerate(METRICS)} for i, n in enumerate(names)}


def median_over_tracks(per_track: list[dict[str, dict[str, float]]], metric: str = "SDR") -> dict[str, float]:
    """{stem: median over tracks}, plus "mean" over stems (the SiSEC aggregation)."""
    stems = list(per_track[0])
    out = {s: float(np.nanmedian([t[s][metric] for t in per_track])) for s in stems}
    out["mean"] = float(np.mean([out[s] for s in stems]))
    return out
