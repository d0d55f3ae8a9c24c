"""A stem-folder song with some stems made louder or quieter, for held-out tests at other balances.

The songs held out here sing louder than many full-length electronic songs do (Lithium's vocals
sit 4.9 dB under the rest where they sing; songs users bring sit 6 to 20 dB under): this writes a
copy whose mix is the sum of the regained stems, so `stems evaluate --stems-dir` scores the
network on the same music at the balance asked for.

Run: .venv/bin/python scripts/remix_song.py ../shared/data/eir-cc0/train/Lithium data/heldout-quiet/Lithium --gain vocals=-10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf

from stems.audio import AUDIO_EXTENSIONS


def parse_gains(items: list[str]) -> dict[str, float]:
    """{"vocals": -10.0} from ["vocals=-10"]."""
    gains = {}
    for item in items:
        stem, _, db = item.partition("=")
        gains[stem] = float(db)
    return gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("song", type=Path, help="a folder of <stem>.<audio extension> files")
    parser.add_argument("out", type=Path)
    parser.add_argument("--gain", action="append", default=[], metavar="STEM=DB")
    args = parser.parse_args()
    gains = parse_gains(args.gain)
    stems = {path.stem: path for path in sorted(args.song.iterdir()) if path.suffix.lower() in AUDIO_EXTENSIONS}
    unknown = set(gains) - set(stems)
    if unknown:
        parser.error(f"{args.song} has no stem {', '.join(sorted(unknown))} (it has {', '.join(stems)})")
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, path in stems.items():
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        sf.write(args.out / f"{stem}.flac", audio * 10 ** (gains.get(stem, 0.0) / 20), rate, subtype="PCM_24")
        print(f"{args.out / f'{stem}.flac'}: {gains.get(stem, 0.0):+.1f} dB")


if __name__ == "__main__":
    main()
