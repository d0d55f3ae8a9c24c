"""Separate stempeg's MUSDB example into ./separated and print per-stem SDR (museval, BSSEval v4)
against its true stems, beside the mixture-as-estimate baseline.

Run: python scripts/demo_report.py [--model quality]   (./scripts/demo.sh sets everything up first)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import stempeg
from rich.console import Console
from rich.table import Table

from stems import Separator
from stems.audio import load
from stems.errors import StemsError
from stems.files import separate_file
from stems.evaluate import score_track

STREAMS = {"drums": 1, "bass": 2, "other": 3, "vocals": 4}  # NI stem order after the mixture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="Registry name or checkpoint file (default: the shipped default).")
    args = parser.parse_args(argv)
    path = Path(stempeg.example_stem_path())
    try:
        separator = Separator.from_checkpoint(args.model)
    except StemsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    mask = separator.default_mask
    started = time.perf_counter()
    result = separate_file(separator, path, Path("separated"), mask=mask, overwrite=True)
    seconds = time.perf_counter() - started
    audio, rate = stempeg.read_stems(str(path), sample_rate=44100)  # (streams, samples, channels)
    references = {stem: audio[i].T.astype(np.float32) for stem, i in STREAMS.items()}
    mixture = audio[0].T.astype(np.float32)
    estimates = {stem: load(result.outputs[stem], 44100) for stem in STREAMS}
    length = min(mixture.shape[-1], *(e.shape[-1] for e in estimates.values()))
    references = {s: r[:, :length] for s, r in references.items()}
    ours = score_track(references, {s: e[:, :length] for s, e in estimates.items()})
    baseline = score_track(references, {s: mixture[:, :length] for s in STREAMS})
    table = Table(title=f"{path.name}: SDR in dB (BSSEval v4, median over 1-s windows)")
    for column in ("stem", "stems (this model)", "mixture as estimate", "gain"):
        table.add_column(column, justify="left" if column == "stem" else "right")
    for stem in STREAMS:
        a, b = ours[stem]["SDR"], baseline[stem]["SDR"]
        table.add_row(stem, f"{a:.2f}", f"{b:.2f}", f"{a - b:+.2f}")
    mean_a = float(np.nanmean([ours[s]["SDR"] for s in STREAMS]))
    mean_b = float(np.nanmean([baseline[s]["SDR"] for s in STREAMS]))
    table.add_row("mean", f"{mean_a:.2f}", f"{mean_b:.2f}", f"{mean_a - mean_b:+.2f}")
    console = Console()
    console.print(table)
    console.print(f"stems written to ./separated/{path.name[:-len('.stem.mp4')]}/ "
                  f"({result.duration:.1f} s of audio in {seconds:.2f} s, {mask} masks, "
                  f"checkpoint {Path(separator.card['path']).name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
