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
from pathlib import Path

import musdb
import numpy as np
import soundfile as sf

from stems.separator import Separator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="registry names or checkpoint files (.onnx, or .pt run in torch)")
    parser.add_argument("--musdb", type=Path, required=True, help="MUSDB18 root")
    parser.add_argument("--subset", default="train")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give at least two models")

    separators = [Separator.from_checkpoint(m, runtime="torch" if m.endswith(".pt") else None) for m in args.models]
    split = args.split if args.subset == "train" else None
    for track in musdb.DB(root=str(args.musdb), subsets=args.subset, split=split):
        mix = track.audio.T.astype(np.float32)  # (2, samples)
        separations = [s.separate(mix, track.rate, mask="soft") for s in separators]
        folder = args.out / track.name
        folder.mkdir(parents=True, exist_ok=True)
        for stem in separations[0]:
            mean = np.mean([stems[stem] for stems in separations], axis=0)  # (2, samples)
            sf.write(folder / f"{stem}.wav", mean.T, track.rate, subtype="FLOAT")
        print(track.name, flush=True)


if __name__ == "__main__":
    main()
