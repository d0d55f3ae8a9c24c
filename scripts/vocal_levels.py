"""How loud vocals sit against the rest of the mix in real songs, where they sing.

For every 1-s frame in which the vocals are audible (above -50 dB of full scale), the level of
the vocals relative to the sum of the other stems, in dB; per song the median, then the spread
over all frames of all songs. `train.vocals_level_db` draws from the range this prints.

Run: .venv/bin/python scripts/vocal_levels.py [--musdb ../shared/data/musdb18-7s] [--folders ../shared/data/eir-cc0/train]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stems.data import musdb_songs, stem_folder_songs

RATE = 44100


def frame_levels(stems: np.ndarray, vocals: int) -> np.ndarray:
    """dB of vocals over the rest in each 1-s frame where the vocals are audible.

    Args:
        stems: (sources, channels, samples).
    """
    frames = stems.shape[-1] // RATE
    cut = np.asarray(stems[..., : frames * RATE], dtype=np.float64).reshape(*stems.shape[:2], frames, RATE)
    energy = np.square(cut).sum(axis=(1, 3))  # (sources, frames)
    rest = np.square(cut.sum(axis=0) - cut[vocals]).sum(axis=(0, 2))
    audible = energy[vocals] > (10 ** (-50 / 10)) * 2 * RATE
    return 10 * np.log10(energy[vocals][audible] / np.maximum(rest[audible], 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--musdb", default="../shared/data/musdb18-7s")
    parser.add_argument("--folders", nargs="*", default=["../shared/data/eir-cc0/train"])
    parser.add_argument("--cache", type=Path, default=Path(".cache/stems-data"))
    args = parser.parse_args()
    songs = [(s, "musdb train") for s in musdb_songs(args.musdb, "train", args.cache)]
    songs += [(s, "musdb valid") for s in musdb_songs(args.musdb, "valid", args.cache)]
    for folder in args.folders:
        songs += [(s, folder) for s in stem_folder_songs(folder, args.cache)]
    groups: dict[str, list[np.ndarray]] = {}
    for song, group in songs:
        levels = frame_levels(song.stems, 3)
        if levels.size:
            groups.setdefault(group, []).append(levels)
            if "musdb" not in group:
                print(f"{song.name}: median {np.median(levels):+.1f} dB over {levels.size} s")
    for group, levels in groups.items():
        medians = np.array([np.median(x) for x in levels])
        every = np.concatenate(levels)
        print(f"{group}: {len(levels)} songs; per-song medians {medians.min():+.1f} .. {medians.max():+.1f} dB "
              f"(5th-95th percentile {np.percentile(medians, 5):+.1f} .. {np.percentile(medians, 95):+.1f}); "
              f"frames 5th-95th percentile {np.percentile(every, 5):+.1f} .. {np.percentile(every, 95):+.1f} dB")


if __name__ == "__main__":
    main()
