"""Checkpoints without pickles: a state dict plus a JSON card, in one torch file.

The file holds {"format", "card" (a JSON string), "state_dict"} and is read with
`torch.load(weights_only=True)` and `load_state_dict(strict=True)`. The first 8 hex digits of the
file's sha256 are part of its name (`name-<sha8>.pt`) and are checked on load. The card's "model"
says what the weights are: one "MaskNet" (its `model_config`) or a "MaskBag" of several (their
`model_configs`, in order).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from .bag import MaskBag
from .config import STFTConfig, config_from_dict
from .errors import StemsError
from .model import MaskNet

FORMAT = "stems-checkpoint-v1"
CHECKPOINT_DIR = Path(os.environ.get("STEMS_CHECKPOINT_DIR", Path(__file__).resolve().parent.parent / "checkpoints"))
REGISTRY = "registry.json"  # in CHECKPOINT_DIR: the shipped models, name -> file
_SHA_NAME = re.compile(r"-([0-9a-f]{8})\.pt$")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def registry() -> dict[str, str]:
    """The shipped models: name -> checkpoint file name in CHECKPOINT_DIR."""
    path = CHECKPOINT_DIR / REGISTRY
    return json.loads(path.read_text()) if path.is_file() else {}


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of the weights alone: the same model keeps it when its card changes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def resolve(name_or_path: str | Path | None) -> Path:
    """A registry name ("default") or a path -> the checkpoint file."""
    name = "default" if name_or_path is None else str(name_or_path)
    models = registry()
    if name in models:
        return CHECKPOINT_DIR / models[name]
    if name_or_path is None:
        raise StemsError(f"{CHECKPOINT_DIR / REGISTRY}: no default model is registered")
    return Path(name_or_path)


def _config_dict(model: MaskNet) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(model.config).items()}


def save_checkpoint(model: MaskNet | MaskBag, stft: STFTConfig, card: dict[str, Any], directory: Path, name: str) -> Path:
    """Write `directory/name-<sha8>.pt` atomically and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, MaskBag):
        described = {"model": "MaskBag", "model_configs": [_config_dict(m) for m in model.members]}
    else:
        described = {"model": "MaskNet", "model_config": _config_dict(model)}
    full_card = {
        "format": FORMAT,
        **described,
        "stft": dataclasses.asdict(stft),
        "parameters": sum(p.numel() for p in model.parameters()),
        "context_frames": model.window_frames,
        **card,
    }
    payload = {"format": FORMAT, "card": json.dumps(full_card, sort_keys=True), "state_dict": model.state_dict()}
    temporary = directory / f".{name}.tmp"
    try:
        torch.save(payload, temporary)
        final = directory / f"{name}-{sha256_of(temporary)[:8]}.pt"
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return final


def read_card(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint file; errors name the file and the problem."""
    if not path.is_file():
        raise StemsError(f"{path}: checkpoint not found")
    match = _SHA_NAME.search(path.name)
    if match and not sha256_of(path).startswith(match.group(1)):
        raise StemsError(f"{path}: checkpoint sha256 does not match its name (corrupt or altered file)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated, foreign or unsafe files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StemsError(f"{path}: not a readable stems checkpoint ({first[:160]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise StemsError(f"{path}: not a stems checkpoint (missing format '{FORMAT}')")
    try:
        card = json.loads(payload["card"])
        state = payload["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise StemsError(f"{path}: checkpoint card is missing or not valid JSON") from None
    return card, state


def _model_from_card(card: dict[str, Any], n_bins: int) -> MaskNet | MaskBag:
    if card.get("model") == "MaskBag":
        return MaskBag([MaskNet(config_from_dict({"model": c}).model, n_bins) for c in card["model_configs"]])
    return MaskNet(config_from_dict({"model": card["model_config"]}).model, n_bins)


def load_checkpoint(name_or_path: str | Path | None = None) -> tuple[MaskNet | MaskBag, STFTConfig, dict[str, Any]]:
    """-> (model in eval mode, its STFT settings, its card)."""
    path = resolve(name_or_path)
    card, state = read_card(path)
    try:
        stft = STFTConfig(**card["stft"])
        model = _model_from_card(card, stft.n_bins)
    except (KeyError, TypeError, ValueError) as error:
        raise StemsError(f"{path}: checkpoint card does not describe a model ({error})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise StemsError(f"{path}: weights do not fit the model in its card ({str(error).splitlines()[0]})") from None
    card["sha256"] = sha256_of(path)
    card["weights_sha256"] = weights_sha256(model)
    card["path"] = str(path)
    return model.eval(), stft, card
