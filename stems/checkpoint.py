"""Checkpoints without pickles: a state dict plus a JSON card, in one torch file.

The file holds {"format", "card" (a JSON string), "state_dict"} and is read with
`torch.load(weights_only=True)` and `load_state_dict(strict=True)`. The first 8 hex digits of the
file's sha256 are part of its name (`name-<sha8>.pt`) and are checked on load (`registry.verify`).
The card's "model" says what the weights are: one "MaskNet" (its `model_config`) or a "MaskBag"
of several (their `model_configs`, in order).

Options that no shipped model uses were retired from the network; a card that names one with its
neutral value (e.g. `"side_input": false`) still loads, one that needs it is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .bag import MaskBag
from .config import STFTConfig, config_from_dict
from .ensemble import is_ensemble
from .errors import StemsError
from .model import MaskNet
from .registry import resolve, sha256_of, verify

FORMAT = "stems-checkpoint-v1"
# Retired model options and the value that means "not used": cards written before they were
# retired carry them.
RETIRED_OPTIONS = {"side_input": False, "band_offsets": False, "freq_dilations": []}


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of the weights alone: the same model keeps it when its card changes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


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
    written = atomic_path(lambda temporary: directory / f"{name}-{sha256_of(temporary)[:8]}.pt", directory / f".{name}.tmp")
    with written as temporary:
        torch.save(payload, temporary)
    return written.final


def read_card(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify a checkpoint file; errors name the file and the problem."""
    if not path.is_file():
        raise StemsError(f"{path}: checkpoint not found")
    digest = verify(path)
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
    card["sha256"] = digest
    return card, state


def _network(model_config: dict[str, Any], n_bins: int, path: Path) -> MaskNet:
    """A MaskNet from a card's model config, retired options at their neutral value dropped."""
    values = dict(model_config)
    for key, neutral in RETIRED_OPTIONS.items():
        if key in values and values.pop(key) != neutral:
            raise StemsError(f"{path}: the model needs '{key}', which this version of stems no longer has")
    return MaskNet(config_from_dict({"model": values}).model, n_bins)


def _model_from_card(card: dict[str, Any], n_bins: int, path: Path) -> MaskNet | MaskBag:
    if card.get("model") == "MaskBag":
        return MaskBag([_network(c, n_bins, path) for c in card["model_configs"]])
    return _network(card["model_config"], n_bins, path)


def load_checkpoint(name_or_path: str | Path | None = None) -> tuple[MaskNet | MaskBag, STFTConfig, dict[str, Any]]:
    """-> (model in eval mode, its STFT settings, its card)."""
    path = resolve(name_or_path, "torch")
    if is_ensemble(path):
        raise StemsError(f"{path}: an ensemble of models (stems.ensemble), where one checkpoint is needed: "
                         "name one of its members' .pt files")
    card, state = read_card(path)
    try:
        stft = STFTConfig(**card["stft"])
        model = _model_from_card(card, stft.n_bins, path)
    except (KeyError, TypeError, ValueError) as error:
        raise StemsError(f"{path}: checkpoint card does not describe a model ({error})") from None
    if isinstance(model, MaskBag):  # bags saved before their widest member stopped being a submodule list it twice
        state = {k: v for k, v in state.items() if not k.startswith("widest.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise StemsError(f"{path}: weights do not fit the model in its card ({str(error).splitlines()[0]})") from None
    card["weights_sha256"] = weights_sha256(model)
    card["path"] = str(path)
    return model.eval(), stft, card
