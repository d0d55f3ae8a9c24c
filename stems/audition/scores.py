"""The SDR shown beside each stem: read from an evaluation JSON (`stems evaluate --json`), or
computed against a folder of true stems.

Against true stems the score is the whole-signal SDR, 10·log10(|s|² / |s − ŝ|²), not BSSEval:
BSSEval v4 over 1-s frames takes about as long as the track for each stem, too slow to wait for
before a page opens. The label says which one the page shows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import StemsError
from .library import STEM_EXTENSIONS, Library

WHOLE_SIGNAL = "SDR: whole-signal 10·log10(|s|²/|s−ŝ|²) against {reference}"
BSSEVAL = "SDR: BSSEval v4, median over 1-s frames ({system}, {file})"
RATE = 44100


def whole_signal_sdr(reference, estimate) -> float:
    """10·log10(|s|² / |s − ŝ|²) over (channels, samples) arrays, trimmed to the shorter; a mono
    side is broadcast onto a stereo one. +inf for an exact estimate, NaN for a silent reference."""
    import numpy as np

    length = min(reference.shape[-1], estimate.shape[-1])
    s, s_hat = np.broadcast_arrays(reference[..., :length].astype(np.float64), estimate[..., :length].astype(np.float64))
    signal, error = float((s ** 2).sum()), float(((s - s_hat) ** 2).sum())
    if signal == 0.0:
        return math.nan
    return math.inf if error == 0.0 else 10.0 * math.log10(signal / error)


def _reference_file(folder: Path, stem: str) -> Path | None:
    for ext in STEM_EXTENSIONS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def score_against_reference(library: Library, reference: Path) -> str:
    """Set each stem's `sdr` from the true stems in `reference`: <reference>/<stem>.<ext> (one track)
    or <reference>/<track>/<stem>.<ext>; stems without a reference keep None. Returns the label."""
    from ..audio import load

    if not reference.is_dir():
        raise StemsError(f"--reference {reference}: not a folder of true stems nor an evaluation .json")
    scored = 0
    for index, track in enumerate(library.tracks):
        folder = reference / track.name if (reference / track.name).is_dir() else reference
        for stem in track.stems:
            true_file = _reference_file(folder, stem.name)
            if true_file is not None:
                stem.sdr = whole_signal_sdr(load(true_file, RATE), load(library.file(index, stem.file), RATE))
                scored += 1
    if not scored:
        raise StemsError(f"--reference {reference}: no true stem matches ({', '.join(s.name for s in library.tracks[0].stems)})")
    return WHOLE_SIGNAL.format(reference=reference.name)


def _pick_system(results: dict, folder_names: set[str]) -> str:
    """The system whose scores to show: another separator's outputs read from a folder of this name
    (`--estimates DIR`), else the first model row, else the first row."""
    for system in results:
        if system.startswith("estimates ") and system[len("estimates "):] in folder_names:
            return system
    model_rows = [s for s in results if s.startswith("stems ")]
    return (model_rows or list(results))[0]


def scores_from_json(library: Library, path: Path, folder_name: str) -> str:
    """Set each stem's `sdr` from an evaluation JSON ({"summary", "tracks": {system: {track:
    {stem: {"SDR": ...}}}}}) for tracks of the same name. Returns the label."""
    try:
        results = json.loads(path.read_text())["tracks"]
        system = _pick_system(results, {folder_name, *(t.source.parent.name for t in library.tracks)})
        per_track = results[system]
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise StemsError(f"--reference {path}: not an evaluation JSON written by `stems evaluate --json`") from None
    matched = 0
    for track in library.tracks:
        for stem in track.stems:
            value = per_track.get(track.name, {}).get(stem.name, {}).get("SDR")
            if isinstance(value, (int, float)):
                stem.sdr, matched = float(value), matched + 1
    if not matched:
        raise StemsError(f"--reference {path}: no scores for {', '.join(t.name for t in library.tracks)} (system '{system}')")
    return BSSEVAL.format(system=system, file=path.name)


def attach_scores(library: Library, reference: Path, folder_name: str) -> str:
    """Scores from `reference` (a folder of true stems or an evaluation JSON); returns the label."""
    if reference.suffix.lower() == ".json":
        return scores_from_json(library, reference, folder_name)
    return score_against_reference(library, reference)
