"""Average several models' separations in the time domain: a bag across STFT sizes.

`scripts/make_bag.py` averages masks on one STFT, so its members must share the STFT. This
measures the bag that does not need to: each model separates the mix with its own STFT and the
stems are averaged sample by sample. It writes <OUT>/<track>/<stem>.wav for every MUSDB track of
the split, to be scored with `stems evaluate --estimates OUT --mask '' --oracle ''`.

    .venv/bin/python scripts/average_separations.py quality runs/n4096-s8/best-455bd172.pt \
        --musdb ../shared/data/musdb18-7s --split valid --out runs/xbag/quality+s8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from stems.atomic import atomic_path
from stems.errors import StemsError
from stems.evaluate import reference_tracks
from stems.separator import Separator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="registry names or checkpoint files (.onnx, or .pt run in torch)")
    parser.add_argument("--musdb", type=Path, help="MUSDB18 root")
    parser.add_argument("--split", default="valid", help="with --musdb: MUSDB18 train's split")
    parser.add_argument("--stems-dir", type=Path, help="or references as <DIR>/<song>/<stem>.*")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give at least two models")

    try:
        tracks = reference_tracks(args.musdb, "train", args.split, False, args.stems_dir, Path(".cache/stems-data"))
        separators = [Separator.from_checkpoint(m, runtime="torch" if m.endswith(".pt") else None) for m in args.models]
    except StemsError as error:
        sys.exit(f"error: {error}")
    for name, references in tracks:
        mix = references.sum(axis=0)  # (channels, samples)
        separations = [s.separate(mix, 44100, mask="soft") for s in separators]
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for stem in separations[0]:
            mean = np.mean([stems[stem] for stems in separations], axis=0)  # (channels, samples)
            with atomic_path(folder / f"{stem}.wav") as temporary:
                sf.write(temporary, mean.T, 44100, format="WAV", subtype="FLOAT")
        print(name, flush=True)


if __name__ == "__main__":
    main()
