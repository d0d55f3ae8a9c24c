"""Bag several trained checkpoints into one (their masks averaged, see stems/bag.py), to evaluate
with `stems evaluate --checkpoint` and ship with scripts/export_checkpoint.py like any checkpoint.

Run: python scripts/make_bag.py runs/a/best-<sha8>.pt runs/b/best-<sha8>.pt --out runs/bag-ab
     -> runs/bag-ab/bag-<sha8>.pt; its card keeps each member's training record and weights hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stems.bag import MaskBag
from stems.checkpoint import load_checkpoint, save_checkpoint
from stems.errors import StemsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, nargs="+", help="Members (files or registry names), in order.")
    parser.add_argument("--out", type=Path, required=True, help="Directory for bag-<sha8>.pt.")
    args = parser.parse_args(argv)
    try:
        loaded = [load_checkpoint(path) for path in args.checkpoints]
        stfts = {stft for _, stft, _ in loaded}
        if len(stfts) > 1:
            raise StemsError(f"members use different STFT settings: {sorted(map(str, stfts))}")
        try:
            bag = MaskBag([model for model, _, _ in loaded])
        except ValueError as error:
            raise StemsError(str(error)) from None
    except StemsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    members = [{"file": Path(card["path"]).name, "weights_sha256": card["weights_sha256"],
                "training": card.get("training", {}), "metrics": card.get("metrics", {})} for _, _, card in loaded]
    path = save_checkpoint(bag, stfts.pop(), {"training": {"bag_of": members}}, args.out, "bag")
    print(f"{path}: a bag of {len(members)} models ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
