"""Ensembles: several models that each separate with their own STFT, their stems averaged.

A `MaskBag` averages masks on one STFT; an ensemble's members may differ in STFT size (a 2048-
and a 4096-point STFT resolve time and frequency differently, and their errors differ), so the
separator runs each member's whole pipeline (STFT, masks, overlap-add) and averages the stems,
as Demucs averages the waveforms of its bags. Members must share the sample rate, hop length and
sources, so their frames and chunks line up.

An ensemble is a JSON file `name-<sha8>.json` beside its members' model files:

    {"format": "stems-ensemble-v1",
     "members": [{"onnx": "quality-d180064f.onnx", "torch": "quality-359a0184.pt"}, ...],
     "sha256": {"quality-d180064f.onnx": "d180064f...", ...},
     "card": {"default_mask": "soft", "metrics": {...}, "training": {...}}}

Each member file is checked against the sha256 the ensemble records before it is read; the
ensemble file itself carries its sha8 in its name like every model file (`registry.verify`).
Nothing here imports torch or onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .errors import StemsError
from .registry import RUNTIMES, sha256_of, verify

FORMAT = "stems-ensemble-v1"
SUFFIX = ".json"


def is_ensemble(path: Path) -> bool:
    return path.suffix == SUFFIX


def write_ensemble(members: list[dict[str, Path]], card: dict[str, Any], directory: Path, name: str) -> Path:
    """Write `directory/name-<sha8>.json` atomically for members ({runtime: file in `directory`}
    each, in order) and return its path."""
    files = [path for member in members for path in member.values()]
    if any(path.parent.resolve() != directory.resolve() for path in files):
        raise ValueError("an ensemble's member files must lie in its directory")
    content = {"format": FORMAT,
               "members": [{runtime: path.name for runtime, path in member.items()} for member in members],
               "sha256": {path.name: sha256_of(path) for path in files},
               "card": card}
    directory.mkdir(parents=True, exist_ok=True)
    written = atomic_path(lambda temporary: directory / f"{name}-{sha256_of(temporary)[:8]}{SUFFIX}",
                          directory / f".{name}{SUFFIX}.tmp")
    with written as temporary:
        temporary.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return written.final


def read_ensemble(path: Path, runtime: str | None = None) -> tuple[list[Path], dict[str, Any]]:
    """-> (each member's model file for `runtime`, in order, every one checked against its
    recorded sha256; the ensemble's card). `runtime` None takes the first of RUNTIMES that every
    member has a file for."""
    digest = verify(path)
    try:
        content = json.loads(path.read_text())
        if content.get("format") != FORMAT:
            raise ValueError
        members, sums, card = list(content["members"]), dict(content["sha256"]), dict(content["card"])
        if not members or not all(isinstance(member, dict) for member in members):
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise StemsError(f"{path}: not a stems ensemble (expected format '{FORMAT}')") from None
    choices = [runtime] if runtime else RUNTIMES
    chosen = next((r for r in choices if all(r in member for member in members)), None)
    if chosen is None:
        raise StemsError(f"{path}: not every member of the ensemble has a {runtime or 'model'} file")
    files = []
    for member in members:
        file = path.parent / member[chosen]
        if not file.is_file():
            raise StemsError(f"{file}: model file not found (a member of {path.name})")
        if sums.get(file.name) != sha256_of(file):
            raise StemsError(f"{file}: sha256 does not match {path.name} (corrupt or altered file)")
        files.append(file)
    return files, card | {"path": str(path), "sha256": digest}


def ensemble_card(card: dict[str, Any], member_cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The card a separator of an ensemble shows: the ensemble's own (metrics, default mask,
    training), its members' cards under "ensemble", and one weights hash over theirs in order."""
    weights = hashlib.sha256(json.dumps([c.get("weights_sha256", c.get("sha256")) for c in member_cards]).encode())
    return card | {"ensemble": member_cards, "weights_sha256": weights.hexdigest(),
                   "parameters": sum(c.get("parameters", 0) for c in member_cards)}
