"""One LMMS project rendered by the lmms command (headless, 32-bit float, 44.1 kHz)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .command import RATE, render_with

LMMS_DATA = Path("/usr/share/lmms")  # projects name their samples relative to it
APT = "apt-get install -y --no-install-recommends lmms lmms-common zynaddsubfx-data"


def render(project: bytes, work: Path) -> np.ndarray:
    """lmms's rendering of a project's XML: float32 (2, samples) at 44.1 kHz, through files
    `work`.mmp and `work`.wav, removed after. Run from /usr/share/lmms, where the projects'
    relative sample paths resolve (elsewhere a missing sample plays as noise); float output, so
    nothing clips.

    Raises:
        StemsError: lmms failed or wrote another rate.
    """
    project_path, wav_path = work.with_suffix(".mmp"), work.with_suffix(".wav")
    project_path.write_bytes(project)
    command = ["lmms", "--allowroot", "render", str(project_path.resolve()), "-a", "-f", "wav", "-s", str(RATE),
               "-o", str(wav_path.resolve())]
    return render_with(command, project_path, wav_path, timeout=1800, cwd=LMMS_DATA,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
