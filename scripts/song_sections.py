"""A full-length song, second by second: which stem takes what. For each stem, the level of the
true stem, of its estimate and of the error (estimate minus true stem) per 1-s frame, in dB
relative to the mix, and BSSEval v4's SDR per frame; the worst seconds are listed and shaded.
Frames where a true stem is silent (below -40 dB of the mix) show leakage into it: whatever the
model puts there is all error, which BSSEval cannot score (the reference is silent) but a
listener hears.

Run: .venv/bin/python scripts/song_sections.py ../shared/data/multitrack-nc/train/"HMT Rostock - Rohaar" \
         --model default --out docs/sections-rohaar.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stems import Separator
from stems.data import stem_folder_songs
from stems.evaluate import score_track
from stems.report import _pyplot


def levels(audio: np.ndarray, frame: int) -> np.ndarray:
    """(channels, samples) -> (frames,) energy per frame."""
    count = audio.shape[-1] // frame
    return (audio[:, : count * frame].reshape(audio.shape[0], count, frame) ** 2).sum(axis=(0, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", type=Path, help="a <song>/{drums,bass,other,vocals}.* folder")
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--worst", type=int, default=8, help="how many worst seconds to list")
    args = parser.parse_args()
    song = stem_folder_songs(args.song.parent, Path(".cache/stems-data"))
    song = next(s for s in song if s.name == args.song.name)
    stems = np.asarray(song.stems, dtype=np.float32)
    separator = Separator.from_checkpoint(args.model)
    names = separator.sources
    mix = stems.sum(axis=0)
    estimates = separator.separate(mix, separator.sample_rate)
    rate = separator.sample_rate
    scores = score_track({n: stems[i] for i, n in enumerate(names)}, estimates, rate)
    mix_level = levels(mix, rate) + 1e-12
    plt = _pyplot()
    figure, axes = plt.subplots(len(names), 1, figsize=(14, 2.2 * len(names)), sharex=True)
    worst_lines = []
    for axis, (i, name) in zip(axes, enumerate(names)):
        true, estimate = levels(stems[i], rate), levels(estimates[name], rate)
        error = levels(estimates[name] - stems[i], rate)
        seconds = np.arange(true.size)
        db = lambda x: 10 * np.log10(x / mix_level + 1e-12)  # noqa: E731
        axis.plot(seconds, db(true), label="true stem", color="black", linewidth=1)
        axis.plot(seconds, db(estimate), label="estimate", color="tab:blue", linewidth=1)
        axis.plot(seconds, db(error), label="error", color="tab:red", linewidth=1)
        silent = db(true) < -40
        axis.fill_between(seconds, -60, 10, where=silent, color="grey", alpha=0.15, label="true stem silent")
        frames = np.array([np.nan if v is None else v for v in scores[name]["frames"]["SDR"]])
        order = [t for t in np.argsort(np.nan_to_num(frames, nan=np.inf)) if np.isfinite(frames[t])][: args.worst]
        for t in order:
            axis.axvspan(t, t + 1, color="tab:orange", alpha=0.3)
        leak = db(estimate)[silent]
        worst_lines.append(f"{name}: median SDR {scores[name]['SDR']:.2f} dB; worst seconds "
                           + ", ".join(f"{t} s ({frames[t]:.1f} dB)" for t in sorted(order))
                           + (f"; silent {silent.sum()} s, leakage into it median {np.median(leak):.1f} dB of the mix"
                              if silent.any() else ""))
        axis.set_ylim(-60, 10)
        axis.set_ylabel(f"{name}\ndB re mix")
    axes[0].legend(loc="upper right", ncol=4, fontsize=8)
    axes[-1].set_xlabel("seconds (orange: the worst 1-s frames by BSSEval SDR)")
    figure.suptitle(f"{args.song.name}: per-second levels, {Path(separator.card['path']).name}")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=80)
    print(f"command: python {' '.join(__import__('sys').argv)}")
    print("\n".join(worst_lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
