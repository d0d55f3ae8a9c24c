"""The shipped models: which files a name stands for, where they live, and their checksums.

`registry.json` in CHECKPOINT_DIR maps each name to its files, one per runtime, or to the one
file of an ensemble (`stems.ensemble`, which names its members' files), and records the sha256 of
every file:

    {"models": {"default": {"onnx": "default-1a2b3c4d.onnx", "torch": "default-19d42199.pt"},
                "quality": {"ensemble": "quality-5e6f7a8b.json"}},
     "sha256": {"default-1a2b3c4d.onnx": "1a2b3c4d...", "default-19d42199.pt": "19d42199...", ...},
     "about": {"default": {"for": "files: the one to use", "speed": {...}}, ...}}

`about` says what each name is for and its speed as measured for the roster (scripts/bench.py
with several models: x real time and x Open-Unmix's network, one sitting); `stems info --list`
shows it beside each card's validation table.

Every model file carries the first 8 hex digits of its sha256 in its name (`name-<sha8>.<ext>`,
as Demucs names its weights); `verify` checks that, and the registry's full sha256 where the file
is listed, before a file is read. Nothing here imports torch or onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .atomic import atomic_path
from .errors import StemsError

REGISTRY = "registry.json"
RUNTIMES = ("onnx", "torch")  # in order of preference
SUFFIXES = {"onnx": ".onnx", "torch": ".pt"}
ENSEMBLE = "ensemble"  # a registry entry's key for an ensemble file, whatever the runtime
_SHA_NAME = re.compile(r"-([0-9a-f]{8})\.(pt|onnx|json)$")


def _checkpoint_dir() -> Path:
    """STEMS_CHECKPOINT_DIR, else the models inside an installed package (stems/checkpoints),
    else the repository's top-level checkpoints/ (an editable install)."""
    if "STEMS_CHECKPOINT_DIR" in os.environ:
        return Path(os.environ["STEMS_CHECKPOINT_DIR"])
    packaged = Path(__file__).resolve().parent / "checkpoints"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "checkpoints"


CHECKPOINT_DIR = _checkpoint_dir()


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read 1 MiB at a time (model files, manifest outputs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def registry(directory: Path | None = None) -> dict:
    """{"models": {name: {runtime: file}}, "sha256": {file: hex digest}, "about": {name: {"for":
    text, "speed": measured}}} (empty without a registry)."""
    path = (directory or CHECKPOINT_DIR) / REGISTRY
    if not path.is_file():
        return {"models": {}, "sha256": {}, "about": {}}
    try:
        content = json.loads(path.read_text())
        return {"models": dict(content["models"]), "sha256": dict(content["sha256"]), "about": dict(content.get("about", {}))}
    except (ValueError, KeyError, TypeError):
        raise StemsError(f"{path}: not a stems model registry") from None


def write_registry(content: dict, directory: Path | None = None) -> None:
    with atomic_path((directory or CHECKPOINT_DIR) / REGISTRY) as temporary:
        temporary.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")


def resolve(name_or_path: str | Path | None, runtime: str | None = None) -> Path:
    """A registry name ("default" when None) or a file path -> the model file.

    For a name, `runtime` picks the file ("onnx" or "torch"); None takes the first of RUNTIMES
    the name has a file for. An ensemble's name gives its one file, whatever the runtime (the
    ensemble names each member's file per runtime)."""
    name = "default" if name_or_path is None else str(name_or_path)
    models = registry()["models"]
    if name in models:
        files = models[name]
        if ENSEMBLE in files:
            return CHECKPOINT_DIR / files[ENSEMBLE]
        choices = [runtime] if runtime else [r for r in RUNTIMES if r in files]
        for choice in choices:
            if choice in files:
                return CHECKPOINT_DIR / files[choice]
        raise StemsError(f"{CHECKPOINT_DIR / REGISTRY}: model '{name}' has no {runtime} file")
    if name_or_path is None:
        raise StemsError(f"{CHECKPOINT_DIR / REGISTRY}: no default model is registered")
    return Path(name_or_path)


def verify(path: Path) -> str:
    """Check a model file against the sha8 in its name and, where the registry lists it, the full
    sha256; returns its sha256. Errors name the file and the problem."""
    if not path.is_file():
        raise StemsError(f"{path}: model file not found")
    digest = sha256_of(path)
    match = _SHA_NAME.search(path.name)
    if match and not digest.startswith(match.group(1)):
        raise StemsError(f"{path}: sha256 does not match its name (corrupt or altered file)")
    if path.resolve().parent == CHECKPOINT_DIR.resolve():
        expected = registry()["sha256"].get(path.name)
        if expected is not None and expected != digest:
            raise StemsError(f"{path}: sha256 does not match {REGISTRY} (corrupt or altered file)")
    return digest


def runtime_of(path: Path) -> str:
    """The runtime a model file is for, by its suffix."""
    for runtime, suffix in SUFFIXES.items():
        if path.suffix == suffix:
            return runtime
    raise StemsError(f"{path}: not a model file (expected {' or '.join(SUFFIXES.values())})")
