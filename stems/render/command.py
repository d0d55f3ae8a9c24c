"""A command that renders one input file to a float wav, read back and both files removed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import StemsError

RATE = 44100


def require(program: str, apt: str) -> None:
    """Raises StemsError naming the `apt` command that installs `program` when it is not on PATH."""
    if shutil.which(program) is None:
        raise StemsError(f"{program} is not installed: {apt}")


def render_with(command: list[str], source: Path, wav_path: Path, timeout: float, **run) -> np.ndarray:
    """Run `command` (which reads `source` and writes `wav_path`; `run`: cwd, env) and read what
    it wrote: float32 (2, samples) at 44.1 kHz; `source` and `wav_path` are removed after.

    Raises:
        StemsError: the command failed or ran past `timeout` seconds, or wrote no file, another rate
            or not stereo.
    """
    try:
        try:
            result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, **run)
        except subprocess.TimeoutExpired:
            raise StemsError(f"{command[0]} took more than {timeout:.0f} s on {source.name}") from None
        if result.returncode != 0 or not wav_path.exists():
            raise StemsError(f"{command[0]} failed on {source.name}: {(result.stderr or result.stdout).strip()[-300:]}")
        audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    finally:
        source.unlink(missing_ok=True)
        wav_path.unlink(missing_ok=True)
    if rate != RATE or audio.shape[1] != 2:
        raise StemsError(f"{command[0]} wrote {rate} Hz, {audio.shape[1]} channels, expected {RATE} Hz stereo")
    return audio.T
