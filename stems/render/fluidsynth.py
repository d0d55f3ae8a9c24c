"""One MIDI file rendered by the fluidsynth command with a General MIDI soundfont."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .command import RATE, render_with

APT = "apt-get install -y --no-install-recommends fluidsynth"


def render(midi: bytes, soundfont: Path, work: Path, gain: float = 0.5) -> np.ndarray:
    """fluidsynth's rendering of a MIDI file: float32 (2, samples) at 44.1 kHz, through files
    `work`.mid and `work`.wav, removed after. Float output: nothing clips and no dither noise is
    added, so a render is deterministic; reverb and chorus are on, so a part carries its own tail;
    samples load per used preset instead of the whole soundfont.

    Raises:
        StemsError: fluidsynth failed or wrote another rate.
    """
    midi_path, wav_path = work.with_suffix(".mid"), work.with_suffix(".wav")
    midi_path.write_bytes(midi)
    command = ["fluidsynth", "-ni", "-q", "-R", "1", "-C", "1", "-g", str(gain), "-r", str(RATE), "-O", "float",
               "-T", "wav", "-o", "synth.dynamic-sample-loading=1", "-F", str(wav_path), str(soundfont), str(midi_path)]
    return render_with(command, midi_path, wav_path, timeout=900)
