"""Put several trained checkpoints in an ensemble (each separates with its own STFT, the stems
are averaged: see stems/ensemble.py), to evaluate with `stems evaluate --checkpoint` before
shipping it with scripts/export_checkpoint.py. Unlike a bag (scripts/make_bag.py) the members
may differ in STFT size; they must share the sample rate, hop length and sources.

Run: python scripts/make_ensemble.py quality runs/n4096/best-<sha8>.pt --out runs/ens-q-n4096
     -> runs/ens-q-n4096/ensemble-<sha8>.json beside a copy of each member's .pt and its ONNX
     export (what `stems separate` runs), then
     stems evaluate --checkpoint runs/ens-q-n4096/ensemble-<sha8>.json --musdb ... --split valid
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from stems.checkpoint import load_checkpoint
from stems.engine import check_members, load_engine
from stems.ensemble import write_ensemble
from stems.errors import StemsError
from stems.export import export_onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="Members (.pt files or registry names), in order.")
    parser.add_argument("--out", type=Path, required=True, help="Directory for ensemble-<sha8>.json and the members.")
    args = parser.parse_args(argv)
    if len(args.checkpoints) < 2:
        parser.error("an ensemble needs at least two members")
    try:
        engines = [load_engine(checkpoint, "torch") for checkpoint in args.checkpoints]
        check_members(engines, str(args.out))
    except StemsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    members = []
    for engine in engines:
        source = Path(engine.card["path"])
        if not (args.out / source.name).exists():  # the name carries the file's sha8: an existing copy is the same
            shutil.copyfile(source, args.out / source.name)
        model, stft, card = load_checkpoint(args.out / source.name)
        onnx = export_onnx(model, stft, card, args.out, source.stem.rsplit("-", 1)[0])
        members.append({"torch": args.out / source.name, "onnx": onnx})
    path = write_ensemble(members, {}, args.out, "ensemble")
    print(f"{path}: an ensemble of {len(engines)} models "
          f"(STFTs {', '.join(str(e.stft.n_fft) for e in engines)}, hop {engines[0].stft.hop_length})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
