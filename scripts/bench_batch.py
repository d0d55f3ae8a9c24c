"""Speed and memory of a catalog batch: one `stems separate` process over a folder of songs.

Makes a folder of N stereo 44.1 kHz wav songs (different excerpts and gains of the real CC0 song
that scripts/bench.py uses, else noise), separates the folder in one process (model load
included) and prints seconds per song, x real time and peak RSS. The network uses one thread
per core unless --threads says otherwise.

Run: .venv/bin/python scripts/bench_batch.py [--songs 20] [--minutes 3] [--checkpoint default] [--runtime onnx]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from bench import RATE, run_cli, song

EXCERPT_STEP_S = 7.3  # each song starts this much later in the (looped) CC0 mix


def make_songs(folder: Path, count: int, seconds: float) -> str:
    """Write `count` songs of `seconds` into `folder`; returns what they are made of."""
    audio, what = song(seconds + count * EXCERPT_STEP_S)
    length = int(seconds * RATE)
    for i in range(count):
        start = int(i * EXCERPT_STEP_S * RATE)
        gain = 0.6 + 0.8 * ((i * 0.37) % 1.0)  # 0.6 .. 1.4 of bench.py's level
        sf.write(folder / f"song{i:03d}.wav", (audio[:, start: start + length] * gain).clip(-1, 1).T, RATE,
                 subtype="PCM_16")
    return what


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each song")
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--runtime", default="onnx")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    args.shifts = 1
    print(f"command: {' '.join(['python', *sys.argv])}")
    with tempfile.TemporaryDirectory(prefix="stems-bench-batch-") as tmp:
        folder = Path(tmp) / "songs"
        folder.mkdir()
        what = make_songs(folder, args.songs, args.minutes * 60)
        seconds, peak = run_cli(folder, Path(tmp) / "out", args, args.runtime)
    audio_seconds = args.songs * args.minutes * 60
    print(f"{args.songs} songs of {args.minutes:g} minutes ({what}), folder -> 4 wav files each, one process, "
          f"model load included: {seconds:.1f} s = {seconds / args.songs:.2f} s per song = "
          f"{audio_seconds / seconds:.1f}x real time, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
