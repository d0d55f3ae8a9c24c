"""Shared fixtures: a tiny checkpoint the tests make themselves, small real and synthetic audio,
and how closely rendered stems add up to a whole render."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stems.checkpoint import load_checkpoint, save_checkpoint
from stems.config import ModelConfig, STFTConfig
from stems.data import SILENCE
from stems.export import export_onnx
from stems.model import MaskNet
from stems.separator import Separator
from stems.torch_engine import TorchEngine

RATE = 44100


def make_model(seed: int = 0, widths=(4, 8, 8), lookahead_frames: int = -1, dilations=(1, 1, 2),
               freq_stride: int = 4, stft: STFTConfig = STFTConfig()) -> MaskNet:
    """A small randomly initialised network whose masks are far from uniform."""
    torch.manual_seed(seed)
    config = ModelConfig(widths=widths, lookahead_frames=lookahead_frames, dilations=dilations, freq_stride=freq_stride)
    model = MaskNet(config, stft.n_bins)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
        model.input_mean.fill_(-4.0)
        model.input_scale.fill_(0.3)
    return model.eval()


def torch_separator(model, **options) -> Separator:
    """A Separator running `model` through the torch engine."""
    return Separator(TorchEngine(model, STFTConfig()), **options)


@pytest.fixture(scope="session")
def tiny_torch_checkpoint(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ckpt")
    return save_checkpoint(make_model(), STFTConfig(), {"training": {"data": ["random weights (tests)"]}}, directory, "tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_torch_checkpoint) -> Path:
    """The tiny network exported to ONNX, as models ship."""
    model, stft, card = load_checkpoint(tiny_torch_checkpoint)
    return export_onnx(model, stft, card, tiny_torch_checkpoint.parent, "tiny")


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    """Run scripts/<name> with this interpreter; its exit status and output, never raising."""
    script = Path(__file__).resolve().parents[1] / "scripts" / name
    return subprocess.run([sys.executable, str(script), *map(str, args)], check=False, capture_output=True, text=True)


def synth(seconds: float, channels: int = 2, seed: int = 0, rate: int = RATE) -> np.ndarray:
    """Chords, a kick-like pulse and noise: (channels, samples) float32 in about [-0.5, 0.5]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (110.0, 220.0, 330.0, 440.0 * 1.26))
    pulse = np.sin(2 * np.pi * 55 * t) * np.exp(-20 * (t % 0.5))
    mono = 0.08 * tone + 0.3 * pulse + 0.02 * rng.standard_normal(t.size)
    out = np.stack([mono * (1 - 0.2 * c) + 0.01 * rng.standard_normal(t.size) for c in range(channels)])
    return out.astype(np.float32)


@pytest.fixture
def song_wav(tmp_path) -> Path:
    path = tmp_path / "in" / "my song.wav"
    path.parent.mkdir()
    sf.write(path, synth(3.0).T, RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def example_stems() -> tuple[np.ndarray, Path]:
    """stempeg's real MUSDB excerpt (a test track: fine for tests, never for training):
    (streams, channels, samples) mixture, drums, bass, other, vocals and its path."""
    stempeg = pytest.importorskip("stempeg")
    path = Path(stempeg.example_stem_path())
    audio, _ = stempeg.read_stems(str(path), sample_rate=RATE)
    return audio.transpose(0, 2, 1).astype(np.float32), path


def residual_db(whole: np.ndarray, mix: np.ndarray) -> float:
    """How closely rendered stems summed (`mix`, (channels, samples), one gain, silence cut) match
    a render of every part at once (`whole`): `whole` from its first sound, at `mix`'s length,
    against what is left of it after taking `mix` at the best gain, in dB."""
    start = np.flatnonzero(np.abs(whole).max(axis=0) >= SILENCE)[0]
    whole = whole[:, start: start + mix.shape[1]]
    gain = float((whole * mix).sum() / (mix * mix).sum())
    return float(10 * np.log10(np.square(whole).sum() / np.square(whole - gain * mix).sum()))


def wait_for(condition, timeout: float = 120.0) -> None:
    """Poll `condition` until it holds (a subprocess reached a state), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    """Headless Chromium (Debian's, driven by Playwright: nothing is downloaded); a fake audio
    output stands in for the missing sound card, and no user gesture is needed to play."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed (scripts/setup.sh test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def page_command(*args: str):
    """The URL of a running `stems <args> --port 0 --no-open` (audition, app), which SIGINT stops
    with status 130 at the end."""
    command = [os.path.join(os.path.dirname(sys.executable), "stems"), *args, "--port", "0", "--no-open"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield server.stdout.readline().strip()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 130
    finally:
        server.kill()
        server.wait()


def download(page, selector: str, path: Path):
    """Click `selector` in a Playwright page and save what the browser downloads as `path`; returns the download."""
    with page.expect_download() as started:
        page.click(selector)
    started.value.save_as(path)
    return started.value
