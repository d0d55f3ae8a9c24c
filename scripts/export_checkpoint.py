"""Ship a trained checkpoint: add its measured validation table to the card, pick the default
mask by that table, write checkpoints/<name>-<sha8>.pt and its ONNX export <name>-<sha8>.onnx
(what inference runs), and register both, with their sha256, in checkpoints/registry.json.

Run: python scripts/export_checkpoint.py runs/default-v1/best-<sha8>.pt --evaluation valid.json --name default
     (valid.json from: stems evaluate --checkpoint runs/default-v1/best-<sha8>.pt --json valid.json ...)
     python scripts/export_checkpoint.py --onnx-only default   (export a registered checkpoint's ONNX again)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from stems.checkpoint import load_checkpoint, save_checkpoint
from stems.config import TrainConfig, config_from_dict
from stems.export import export_onnx, register
from stems.registry import CHECKPOINT_DIR
from stems.train import data_licences, init_checkpoint

DERIVED = ("path", "sha256", "weights_sha256", "format", "model", "stft", "model_config", "model_configs",
           "parameters", "context_frames")  # keys save_checkpoint and load_checkpoint write themselves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="A run's checkpoint file, or with --onnx-only a registry name")
    parser.add_argument("--evaluation", type=Path, help="JSON written by `stems evaluate --json`")
    parser.add_argument("--name", default="default")
    parser.add_argument("--command", default="", help="The evaluate command that produced the JSON (kept in the card).")
    parser.add_argument("--onnx-only", action="store_true", help="Only export and register the ONNX model again.")
    args = parser.parse_args()
    model, stft, card = load_checkpoint(args.checkpoint)
    if args.onnx_only:
        path = export_onnx(model, stft, card, CHECKPOINT_DIR, args.checkpoint)
        register(args.checkpoint, {"onnx": path})
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
        return
    if args.evaluation is None:
        parser.error("--evaluation is required to ship a checkpoint")
    evaluation = json.loads(args.evaluation.read_text())
    summary = evaluation["summary"]
    ours = {k: v for k, v in summary.items() if k.startswith("stems ")}
    best_system = max(ours, key=lambda k: ours[k]["mean"])
    for key in DERIVED:
        card.pop(key, None)
    training = card.get("training", {})
    if "config" in training:  # every training source with its licence (runs from before the card listed them too)
        known = {field.name for field in dataclasses.fields(TrainConfig)}
        data = {key: value for key, value in training["config"]["train"].items() if key in known}
        config = config_from_dict({"train": data})
        training["licences"] = data_licences(config)
        if config.train.init and "init" not in training:  # runs from before the card named their init's data
            training["init"] = init_checkpoint(config)[1]
    card["default_mask"] = best_system.rsplit(" ", 1)[-1]
    card["metrics"] = {
        "musdb_valid_bsseval_v4_sdr": summary,
        "aggregation": "median over 1-s frames, then median over the 14 MUSDB18 valid tracks (7-s previews)",
        "command": args.command,
        "during_training": card.get("metrics", {}),
    }
    if "two_stems" in evaluation:
        two = evaluation["two_stems"]
        card["metrics"]["musdb_valid_two_stems_sdr"] = {"stem": two["stem"], "summary": two["summary"]}
    pt = save_checkpoint(model, stft, card, CHECKPOINT_DIR, args.name)
    model, stft, card = load_checkpoint(pt)
    onnx = export_onnx(model, stft, card, CHECKPOINT_DIR, args.name)
    register(args.name, {"torch": pt, "onnx": onnx})
    print(f"{pt} ({pt.stat().st_size / 1e6:.2f} MB), {onnx.name}, default mask {card['default_mask']}")


if __name__ == "__main__":
    main()
