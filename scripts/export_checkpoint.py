"""Ship a trained checkpoint: add its measured validation table to the card, pick the default
mask by that table, write checkpoints/<name>-<sha8>.pt and its ONNX export <name>-<sha8>.onnx
(what inference runs), and register both, with their sha256, in checkpoints/registry.json.

Given several models, ship an ensemble of them (`stems.ensemble`: each separates with its own
STFT, the stems are averaged): each member (a run's checkpoint or a registered name) is shipped
as <name>-m<i>-<sha8>.pt/.onnx (its card keeps its training, with licences, and its metrics), and
the measured table of the whole goes in checkpoints/<name>-<sha8>.json, registered as `name`.

Run: python scripts/export_checkpoint.py runs/default-v1/best-<sha8>.pt --evaluation valid.json --name default
     (valid.json from: stems evaluate --checkpoint runs/default-v1/best-<sha8>.pt --json valid.json ...)
     python scripts/export_checkpoint.py quality runs/n4096/best-<sha8>.pt --evaluation valid.json --name quality
     (valid.json from: stems evaluate --checkpoint of scripts/make_ensemble.py's ensemble ...)
     python scripts/export_checkpoint.py --onnx-only default   (export a registered checkpoint's ONNX again)
     python scripts/export_checkpoint.py --recard quality --licence gpu/data/eir=CC0-1.0
     (ship a registered model again, each member of an ensemble, with every training source's
     licence in its card; a licence the card records stays where the config cannot resolve the
     folder; --licence states one neither has; weights and metrics kept)
     python scripts/export_checkpoint.py --recard default --name fast
     (ship registered model `default` again under the name `fast`, before another model becomes
     the default: weights, card and metrics kept)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from stems.checkpoint import load_checkpoint, save_checkpoint
from stems.config import TrainConfig, config_from_dict
from stems.data import NOT_STATED
from stems.engine import check_members
from stems.ensemble import read_ensemble, write_ensemble
from stems.errors import StemsError
from stems.export import export_onnx, register
from stems.registry import CHECKPOINT_DIR, ENSEMBLE, REGISTRY, registry
from stems.torch_engine import TorchEngine
from stems.train import data_licences, init_checkpoint

DERIVED = ("path", "sha256", "weights_sha256", "format", "model", "stft", "model_config", "model_configs",
           "parameters", "context_frames")  # keys save_checkpoint and load_checkpoint write themselves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+",
                        help="A run's checkpoint file (several: an ensemble's members, files or registered names), "
                             "or with --onnx-only a registry name")
    parser.add_argument("--evaluation", type=Path, help="JSON written by `stems evaluate --json`")
    parser.add_argument("--name", help="The name to ship as (default: default; with --recard: the model's own)")
    parser.add_argument("--command", default="", help="The evaluate command that produced the JSON (kept in the card).")
    parser.add_argument("--onnx-only", action="store_true", help="Only export and register the ONNX model again.")
    parser.add_argument("--recard", action="store_true",
                        help="Ship registered models again with their training sources' licences in the card.")
    parser.add_argument("--licence", action="append", default=[],
                        help="FOLDER=LICENCE for a training folder whose licence the config does not state (repeatable)")
    args = parser.parse_args()
    if args.recard:
        if args.name and len(args.checkpoints) > 1:
            parser.error("--name with --recard ships one model under a new name")
        for name in args.checkpoints:
            recard(name, args.licence, args.name or name)
        return
    if args.onnx_only:
        name = args.checkpoints[0]
        model, stft, card = load_checkpoint(name)
        path = export_onnx(model, stft, card, CHECKPOINT_DIR, name)
        register(name, {"onnx": path})
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")
        return
    if args.evaluation is None:
        parser.error("--evaluation is required to ship a checkpoint")
    evaluation = json.loads(args.evaluation.read_text())
    name = args.name or "default"
    if len(args.checkpoints) > 1:
        ship_ensemble(args.checkpoints, evaluation, name, args.command)
        return
    model, stft, card = load_checkpoint(args.checkpoints[0])
    card = shipped_card(card, args.licence) | measured(evaluation, args.command, training_record(card))
    pt = save_checkpoint(model, stft, card, CHECKPOINT_DIR, name)
    model, stft, card = load_checkpoint(pt)
    onnx = export_onnx(model, stft, card, CHECKPOINT_DIR, name)
    register(name, {"torch": pt, "onnx": onnx})
    print(f"{pt} ({pt.stat().st_size / 1e6:.2f} MB), {onnx.name}, default mask {card['default_mask']}")


def shipped_card(card: dict[str, Any], stated: list[str] = ()) -> dict[str, Any]:
    """A run's card without what saving derives, every training source with its licence (a
    bag's: each member's); `stated`: FOLDER=LICENCE items added to the config's own."""
    card = {key: value for key, value in card.items() if key not in DERIVED}
    training = card.get("training", {})
    for stage in [member["training"] for member in training.get("bag_of", [])] or [training]:
        _add_licences(stage, stated)
    return card


def _add_licences(training: dict[str, Any], stated: list[str]) -> None:
    """Every training source of a card's training record with its licence: from the config (a
    folder's songs.json, the config's or `stated` licences); a licence the card already records
    stays where neither resolves its folder (one trained on another machine)."""
    if "config" in training:  # every training source with its licence (runs from before the card listed them too)
        known = {field.name for field in dataclasses.fields(TrainConfig)}
        data = {key: value for key, value in training["config"]["train"].items() if key in known}
        own = config_from_dict({"train": data}).train.licences
        config = config_from_dict({"train": data | {"licences": [*own, *stated]}})
        recorded = training.get("licences", {})
        training["licences"] = {folder: recorded.get(folder, licence) if licence == NOT_STATED else licence
                                for folder, licence in data_licences(config).items()}
        if config.train.init and "init" not in training:  # runs from before the card named their init's data
            training["init"] = init_checkpoint(config)[1]


def training_record(card: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint's training recorded of it: a run's card metrics, or in a card shipped
    before, the copy kept under "during_training" (so shipping a model again nests nothing)."""
    metrics = card.get("metrics", {})
    return metrics.get("during_training", metrics)


def measured(evaluation: dict[str, Any], command: str, during_training: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card's default mask (the better on validation) and metrics, from `stems evaluate --json`."""
    summary = evaluation["summary"]
    ours = {k: v for k, v in summary.items() if k.startswith("stems ")}
    best_system = max(ours, key=lambda k: ours[k]["mean"])
    metrics = {
        "musdb_valid_bsseval_v4_sdr": summary,
        "aggregation": "median over 1-s frames, then median over the 14 MUSDB18 valid tracks (7-s previews)",
        "command": command,
    }
    if during_training is not None:  # a network's own record; an ensemble has none of its own
        metrics["during_training"] = during_training
    if "two_stems" in evaluation:
        two = evaluation["two_stems"]
        metrics["musdb_valid_two_stems_sdr"] = {"stem": two["stem"], "summary": two["summary"]}
    return {"default_mask": best_system.rsplit(" ", 1)[-1], "metrics": metrics}


def ship_ensemble(members: list[str], evaluation: dict[str, Any], name: str, command: str) -> None:
    """Ship each member (a checkpoint file or registered name) as `name`-m<i> and register `name`
    as their ensemble. Every member is read and checked before anything is written."""
    loaded = [load_checkpoint(member) for member in members]
    check_members([TorchEngine(*checkpoint) for checkpoint in loaded], name)
    files = [reship(checkpoint, f"{name}-m{i}") for i, checkpoint in enumerate(loaded, 1)]
    card = measured(evaluation, command)
    path = write_ensemble(files, card, CHECKPOINT_DIR, name)
    register(name, {"ensemble": path})
    print(f"{path}: an ensemble of {len(files)} models, default mask {card['default_mask']}")


def recard(name: str, stated: list[str], shipped_as: str) -> None:
    """Ship registered model `name` again as `shipped_as` (an ensemble: each member), its card's
    training sources with their licences; weights and metrics unchanged."""
    models = registry()["models"]
    if name not in models:
        raise StemsError(f"{CHECKPOINT_DIR / REGISTRY}: no model named '{name}' to ship again")
    entry = models[name]
    if ENSEMBLE in entry:
        members, card = read_ensemble(CHECKPOINT_DIR / entry[ENSEMBLE], "torch")
        loaded = [load_checkpoint(member) for member in members]
        files = [reship(checkpoint, f"{shipped_as}-m{i}", stated) for i, checkpoint in enumerate(loaded, 1)]
        card = {key: value for key, value in card.items() if key not in ("path", "sha256")}
        path = write_ensemble(files, card, CHECKPOINT_DIR, shipped_as)
        register(shipped_as, {"ensemble": path})
    else:
        register(shipped_as, reship(load_checkpoint(name), shipped_as, stated))
    print(f"{name}: shipped again as {shipped_as}, {registry()['models'][shipped_as]}")


def reship(checkpoint: tuple, name: str, stated: list[str] = ()) -> dict[str, Path]:
    """Write a loaded checkpoint (model, STFT, card; the card as `shipped_card` makes it) as
    CHECKPOINT_DIR/name-<sha8>.pt and its ONNX export; -> {runtime: file}."""
    model, stft, card = checkpoint
    pt = save_checkpoint(model, stft, shipped_card(card, stated), CHECKPOINT_DIR, name)
    model, stft, card = load_checkpoint(pt)
    return {"torch": pt, "onnx": export_onnx(model, stft, card, CHECKPOINT_DIR, name)}


if __name__ == "__main__":
    try:
        main()
    except StemsError as error:  # a missing, altered or mismatched model: one line, nothing written
        sys.exit(f"error: {error}")
