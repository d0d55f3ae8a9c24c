"""Ship a trained checkpoint: add its measured validation table to the card, pick the default
mask by that table, write checkpoints/<name>-<sha8>.pt and register it in checkpoints/registry.json.

Run: python scripts/export_checkpoint.py runs/default-v1/best-<sha8>.pt --evaluation valid.json --name default
     (valid.json from: stems evaluate --checkpoint runs/default-v1/best-<sha8>.pt --json valid.json ...)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stems.checkpoint import CHECKPOINT_DIR, REGISTRY, load_checkpoint, registry, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--evaluation", type=Path, required=True, help="JSON written by `stems evaluate --json`")
    parser.add_argument("--name", default="default")
    parser.add_argument("--command", default="", help="The evaluate command that produced the JSON (kept in the card).")
    args = parser.parse_args()
    model, stft, card = load_checkpoint(args.checkpoint)
    summary = json.loads(args.evaluation.read_text())["summary"]
    ours = {k: v for k, v in summary.items() if k.startswith("stems ")}
    best_system = max(ours, key=lambda k: ours[k]["mean"])
    card.pop("sha256"), card.pop("path"), card.pop("weights_sha256")
    for key in ("format", "model", "stft", "model_config", "model_configs", "parameters", "context_frames"):
        card.pop(key, None)
    card["default_mask"] = best_system.rsplit(" ", 1)[-1]
    card["metrics"] = {
        "musdb_valid_bsseval_v4_sdr": summary,
        "aggregation": "median over 1-s frames, then median over the 14 MUSDB18 valid tracks (7-s previews)",
        "command": args.command,
        "during_training": card.get("metrics", {}),
    }
    path = save_checkpoint(model, stft, card, CHECKPOINT_DIR, args.name)
    models = registry()
    old = models.get(args.name)
    if old and old != path.name:
        (CHECKPOINT_DIR / old).unlink(missing_ok=True)
    models[args.name] = path.name
    (CHECKPOINT_DIR / REGISTRY).write_text(json.dumps(models, indent=2, sort_keys=True) + "\n")
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB), default mask {card['default_mask']}")


if __name__ == "__main__":
    main()
