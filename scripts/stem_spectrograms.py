"""Render stems of a few MUSDB18 valid excerpts with a checkpoint and draw each one's true and
separated spectrograms side by side (what the model keeps, what it misses), one PNG per track.

Run: .venv/bin/python scripts/stem_spectrograms.py --out docs \
        --track "Actions - One Minute Smile" --track "Fergessen - Nos Palpitants" --seconds 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stems import Separator, spectral
from stems.evaluate import reference_tracks, score_track
from stems.report import stem_spectrogram_plot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="registry name or file (default: the shipped model)")
    parser.add_argument("--musdb", type=Path, default=Path("../shared/data/musdb18-7s"))
    parser.add_argument("--track", action="append", required=True)
    parser.add_argument("--start", type=float, default=1.0, help="excerpt start, seconds")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    separator = Separator.from_checkpoint(args.checkpoint)
    tracks = dict(reference_tracks(args.musdb, "train", "valid", False, None, Path(".cache/stems-data")))
    names, rate = separator.sources, separator.sample_rate

    def magnitudes(waves: np.ndarray) -> np.ndarray:  # (..., channels, samples) -> (..., bins, frames), left channel
        return np.abs(spectral.stft(np.ascontiguousarray(waves[..., 0, :]), separator.engines[0].stft))

    unknown = [name for name in args.track if name not in tracks]
    if unknown:  # before any figure is written
        raise SystemExit(f"--track {unknown[0]}: not a valid-split track (tracks: {', '.join(sorted(tracks))})")
    for name in args.track:
        references = tracks[name][..., int(args.start * rate): int((args.start + args.seconds) * rate)]
        estimates = separator.separate(references.sum(axis=0), rate)
        scores = score_track({n: references[i] for i, n in enumerate(names)}, estimates)
        path = args.out / f"stems-{''.join(c if c.isalnum() else '-' for c in name.lower())}.png"
        stem_spectrogram_plot(magnitudes(references.sum(axis=0)), magnitudes(references),
                              magnitudes(np.stack([estimates[n] for n in names])), names, rate,
                              separator.hop_length, path,
                              f"{name}, {args.start:g}-{args.start + args.seconds:g} s, {separator.default_mask} masks of "
                              f"{Path(separator.card['path']).name}; SDR " +
                              ", ".join(f"{n} {scores[n]['SDR']:.1f}" for n in names) + " dB")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
