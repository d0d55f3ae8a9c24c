"""The wheel: built from the repository, installed into a fresh virtual environment outside it,
it separates a file with the shipped ONNX model (no torch installed there), holds the pages' files,
and the commands that need the training extras say so in one line."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from conftest import RATE, synth

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_separates_outside_the_repository(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STEMS_CHECKPOINT_DIR", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "wheel"), str(REPO)], check=True, env=env, cwd=tmp_path)
    wheel = next((tmp_path / "wheel").glob("stems-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "env")], check=True, env=env)
    python = tmp_path / "env" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], check=True, env=env, cwd=tmp_path)
    song = tmp_path / "song.wav"
    sf.write(song, synth(2.0).T, RATE)
    stems = tmp_path / "env" / "bin" / "stems"
    run = subprocess.run([stems, "separate", str(song), "-o", str(tmp_path / "out")], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    shown = subprocess.run([stems, "info", "quality"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "model quality-" in shown.stdout and ".onnx" in shown.stdout  # the packaged registry
    pages = subprocess.run([python, "-c", "from stems.app.server import ASSETS, PAGE; print(*sorted(ASSETS), 'stems-token' in PAGE)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert pages.stdout.split() == ["app.css", "mixer.js", "page.js", "style.css", "True"], pages.stderr  # the pages' files
    missing = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert missing.returncode != 0  # the inference install holds no torch
    for command, args in (("evaluate", ["--stems-dir", tmp_path / "out", "--oracle", "mix"]), ("train", []),
                          ("dataset build", ["--mix", song, "--vocals", song, "-o", tmp_path / "pair"])):
        refused = subprocess.run([stems, *command.split(), *map(str, args)], capture_output=True, text=True, env=env,
                                 cwd=tmp_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert re.search(rf"^error: stems {command} needs the training extras \(\w+ is not installed\): "
                         r"pip install '\.\[train\]' in the stems checkout$", refused.stderr, re.M), refused.stderr
