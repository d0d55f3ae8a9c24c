"""A few real training steps on a tiny stem folder the test writes."""

import json

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from stems.checkpoint import load_checkpoint
from stems.cli import app

from conftest import RATE, synth


def _stem_folder(root):
    for song in ("one", "two"):
        folder = root / song
        folder.mkdir(parents=True)
        for i, stem in enumerate(("drums", "bass", "other", "vocals")):
            if song == "two" and stem == "bass":
                continue  # a missing stem is silence
            sf.write(folder / f"{stem}.wav", synth(2.0, seed=10 * i + len(song)).T * 0.5, RATE)


def test_train_command_runs_resumes_and_exports(tmp_path):
    _stem_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    settings = ["train.musdb_root=''", f"train.stem_dirs=['{tmp_path / 'data'}']", f"train.cache_dir='{tmp_path / 'cache'}'",
                "model.widths=[4,8,8]", "train.batch_size=2", "train.excerpt_frames=8", "train.steps=4",
                "train.save_every=2"]
    args = ["train", "--out", str(run_dir)] + [a for s in settings for a in ("--set", s)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3, 4] and all(np.isfinite(s["loss"]) for s in steps)
    checkpoint = next(run_dir.glob("last-*.pt"))
    model, _, card = load_checkpoint(checkpoint)
    assert card["training"]["step"] == 4 and model.config.widths == (4, 8, 8)
    more = CliRunner().invoke(app, ["train", "--resume", str(run_dir), "--set", "train.steps=6"], catch_exceptions=False)
    assert more.exit_code == 0, more.output
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps[-2:] == [5, 6]


def test_train_rejects_bad_config(tmp_path):
    result = CliRunner().invoke(app, ["train", "--set", "train.bogus=1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown config key 'train.bogus'" in result.output
