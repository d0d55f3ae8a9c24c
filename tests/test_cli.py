"""`stems separate` and `stems info` end to end on a checkpoint the tests make, and every bad input."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.audio import load
from stems.cli import app

from conftest import RATE, synth

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def separate(ckpt, *args):
    return run("separate", *args, "--checkpoint", ckpt)


def test_separate_writes_four_stems_that_add_up(tmp_path, tiny_checkpoint, song_wav):
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, song_wav, "-o", out, "--float")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (out / "my song").iterdir())
    assert files == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    mix = load(song_wav, RATE)
    total = sum(load(out / "my song" / f, RATE) for f in files)
    assert total.shape == mix.shape and np.abs(total - mix).max() < 1e-4
    assert "x real time" in result.output


def test_real_stem_mp4_input_and_two_stems(tmp_path, tiny_checkpoint, example_stems):
    audio, path = example_stems
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, path, "-o", out, "--two-stems", "vocals", "--mask", "soft", "--float")
    assert result.exit_code == 0, result.output
    folder = out / "The Easton Ellises - Falcon 69"
    assert sorted(p.name for p in folder.iterdir()) == ["no_vocals.wav", "vocals.wav"]
    vocals, rest = load(folder / "vocals.wav", RATE), load(folder / "no_vocals.wav", RATE)
    assert vocals.shape == audio[0].shape
    assert np.abs(vocals + rest - audio[0]).max() < 2e-3  # AAC decoders differ by a few LSB


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_other_formats_and_subsets(tmp_path, tiny_checkpoint, song_wav, fmt):
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, song_wav, "-o", out, "--format", fmt, "--stems", "vocals",
                      "--filename", "{stem}/{track}.{ext}")
    assert result.exit_code == 0, result.output
    written = load(out / "vocals" / f"my song.{fmt}", RATE)
    assert written.shape[0] == 2 and abs(written.shape[1] - RATE * 3) < 3000
    assert [p.name for p in out.iterdir()] == ["vocals"]


def test_mono_and_other_rates(tmp_path, tiny_checkpoint):
    path = tmp_path / "mono22k.flac"
    sf.write(path, synth(2.0, channels=1, rate=22050)[0], 22050)
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "resampled from 22050 Hz" in result.output
    vocals = sf.read(tmp_path / "out" / "mono22k" / "vocals.wav")[0]
    assert vocals.ndim == 1 and abs(len(vocals) - 2 * RATE) < 50


def test_clipping_is_reported(tmp_path, tiny_checkpoint):
    path = tmp_path / "loud.wav"
    square = np.sign(np.sin(2 * np.pi * 100 * np.arange(RATE) / RATE)).astype(np.float32)
    sf.write(path, np.stack([square, square]).T * 1.0, RATE, subtype="FLOAT")
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "clipped" in result.output


def _bad(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        content(path)
    return path


def _truncated(path):
    sf.write(path, synth(1.0).T, RATE, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _six_channels(path):
    sf.write(path, np.zeros((1000, 6), dtype=np.float32), RATE)


def _zero_length(path):
    sf.write(path, np.zeros((0, 2), dtype=np.float32), RATE)


@pytest.mark.parametrize("name,content,problem", [
    ("empty.wav", b"", "empty file"),
    ("zero.wav", _zero_length, "empty audio"),
    ("text.wav", b"this is not audio at all, just text\n" * 20, "not an audio file"),
    ("garbage.mp3", bytes(range(256)) * 40, "not an audio file"),
    ("six.wav", _six_channels, "6 channels"),
])
def test_bad_inputs_fail_cleanly(tmp_path, tiny_checkpoint, name, content, problem):
    path = _bad(tmp_path, name, content)
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, path, "-o", out)
    assert result.exit_code == 1
    assert problem in result.output and name in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_truncated_wav_is_reported_or_read_in_part(tmp_path, tiny_checkpoint):
    # a cut wav keeps a header that promises more samples than it holds
    path = _bad(tmp_path, "cut.wav", _truncated)
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, path, "-o", out)
    leftovers = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    if result.exit_code == 0:  # libsndfile fixes the header up: the samples present are used
        assert len(leftovers) == 4
    else:
        assert "cut.wav" in result.output and leftovers == []
    assert not [p for p in leftovers if ".part" in p.name]


def test_batch_goes_on_past_bad_files(tmp_path, tiny_checkpoint, song_wav):
    bad = _bad(tmp_path, "bad.wav", b"nope" * 100)
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, bad, tmp_path / "missing.wav", song_wav, "-o", out)
    assert result.exit_code == 1
    assert "missing.wav: no such file" in result.output and "bad.wav" in result.output
    assert len(list((out / "my song").iterdir())) == 4
    assert "2 of 3 inputs failed" in result.output


def test_directory_without_audio(tmp_path, tiny_checkpoint):
    (tmp_path / "empty_dir").mkdir()
    result = separate(tiny_checkpoint, tmp_path / "empty_dir")
    assert result.exit_code == 1 and "no audio files in this directory" in result.output


def test_existing_output_is_kept_without_overwrite(tmp_path, tiny_checkpoint, song_wav):
    out = tmp_path / "out"
    target = out / "my song" / "vocals.wav"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"precious")
    result = separate(tiny_checkpoint, song_wav, "-o", out)
    assert result.exit_code == 1 and "output exists" in result.output
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in target.parent.iterdir()) == ["vocals.wav"]
    assert separate(tiny_checkpoint, song_wav, "-o", out, "--overwrite").exit_code == 0
    assert target.read_bytes() != b"precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_output_directory_non_root(tmp_path, tiny_checkpoint, song_wav):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    result = separate(tiny_checkpoint, song_wav, "-o", out)
    assert result.exit_code == 1 and "cannot write output" in result.output


def test_output_directory_that_is_a_file(tmp_path, tiny_checkpoint, song_wav):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output directory should be")
    result = separate(tiny_checkpoint, song_wav, "-o", blocker)
    assert result.exit_code == 1 and "cannot write output" in result.output


@pytest.mark.parametrize("template", ["../{stem}.{ext}", "/tmp/{stem}.{ext}", "{track}/../../x{stem}.{ext}", "{nope}"])
def test_filename_templates_cannot_escape(tmp_path, tiny_checkpoint, song_wav, template):
    result = separate(tiny_checkpoint, song_wav, "-o", tmp_path / "out", "--filename", template)
    assert result.exit_code == 1 and "--filename" in result.output
    assert not any(p.is_file() for p in tmp_path.rglob("*.wav") if p != song_wav)


def test_same_track_name_twice_never_overwrites(tmp_path, tiny_checkpoint):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "song.wav", synth(1.0, seed=ord(folder)).T, RATE)
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, tmp_path / "a", tmp_path / "b", "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["song", "song (2)"]


def test_corrupt_checkpoint(tmp_path, song_wav):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 100)
    result = separate(bad, song_wav, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "broken.pt" in result.output and "Traceback" not in result.output


def test_info(tiny_checkpoint):
    result = run("info", tiny_checkpoint)
    assert result.exit_code == 0
    for text in ("drums, bass, other, vocals", "n_fft 2048", "sha256", "13 frames"):
        assert text in result.output
    assert run("info", "/nonexistent.pt").exit_code == 1


def test_info_list_shows_every_shipped_model_with_its_cards_figures(monkeypatch):
    """stems info --list: a row per registered model, the roster first, with its card's valid
    SDR (four stems, and vocals / no_vocals of two where the card has them), the registry's
    measured speed, latency, parameters and licences."""
    from stems.engine import load_engines
    from stems.registry import registry

    monkeypatch.setenv("COLUMNS", "300")
    result = run("info", "--list")
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in result.output.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    shipped = registry()
    assert list(rows) == [n for n in ("default", "fast", "quality", "lowlatency") if n in shipped["models"]]
    for name, (purpose, four, two, speed, latency, parameters, licences) in rows.items():
        _, card = load_engines(name)
        metrics, mask = card["metrics"], card["default_mask"]
        assert four == f"{metrics['musdb_valid_bsseval_v4_sdr'][f'stems {mask}']['mean']:.2f}"
        if "musdb_valid_two_stems_sdr" in metrics:
            pair = metrics["musdb_valid_two_stems_sdr"]["summary"][f"stems {mask}"]
            assert two == f"{pair['vocals']:.2f} / {pair['no_vocals']:.2f}"
        about = shipped["about"][name]
        assert purpose == about["for"] and f"{about['speed']['x_open_unmix_network']:.1f}x Open-Unmix's network" in speed
        assert parameters == f"{card['parameters']:,}" and latency.endswith(" ms") and "MUSDB18" in licences
    assert "speed measured by: " in result.output and "scripts/bench.py --checkpoint" in result.output


def test_info_lists_each_training_source_with_its_licence():
    result = run("info", "lowlatency")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "eir-cc0/train: CC0-1.0" in text and "MUSDB18: research and non-commercial use only" in text


@pytest.mark.parametrize("name", ["default", "fast", "quality", "lowlatency"])
def test_every_shipped_network_states_the_licence_of_each_training_source(name):
    """Each network of a shipped model (an ensemble's members, a bag's members) records a licence
    for every training folder of its config, none "not stated"."""
    from stems.engine import load_engines

    engines, _ = load_engines(name, "torch")
    for engine in engines:
        training = engine.card["training"]
        for network in [member["training"] for member in training.get("bag_of", [])] or [training]:
            train = network["config"]["train"]
            folders = [*([train["musdb_root"]] if train.get("musdb_root") else []), *train.get("stem_dirs", []),
                       *train.get("rendered_dirs", [])]
            assert set(network["licences"]) == set(folders), name
            assert "not stated" not in network["licences"].values(), (name, network["licences"])


def test_shipped_models_by_registry_name(tmp_path, song_wav):
    out = tmp_path / "out"
    result = run("separate", song_wav, "-o", out, "--model", "lowlatency", "--stems", "vocals")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / song_wav.stem).iterdir()) == ["vocals.wav"]
    result = run("separate", song_wav, "-o", tmp_path / "q", "--model", "quality", "--two-stems", "vocals")
    assert result.exit_code == 0, result.output
    mix, _ = sf.read(song_wav, dtype="float32")
    parts = [sf.read(tmp_path / "q" / song_wav.stem / f"{s}.wav", dtype="float32")[0] for s in ("vocals", "no_vocals")]
    assert np.abs(parts[0] + parts[1] - mix).max() < 2e-4  # the bag's stems still add up to the mix (16-bit)
    missing = run("separate", song_wav, "-o", out, "--model", "no-such-model")
    assert missing.exit_code == 1 and "no-such-model" in missing.output


def test_help_has_examples():
    for command in ("separate", "info", "export-stems"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Example" in result.output


def test_console_script_end_to_end(tmp_path, tiny_checkpoint, song_wav):
    exe = shutil.which("stems", path=os.path.dirname(sys.executable))
    assert exe, "the console script 'stems' is installed beside python"
    done = subprocess.run([exe, "separate", str(song_wav), "-o", str(tmp_path / "o"), "--checkpoint",
                           str(tiny_checkpoint)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "o" / "my song").glob("*.wav"))) == 4
    missing = subprocess.run([exe, "separate", str(tmp_path / "nope.wav"), "--checkpoint", str(tiny_checkpoint)],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 1 and "nope.wav: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_demo_report_with_an_unknown_model_is_one_line_and_exit_2(tmp_path):
    script = Path(__file__).parents[1] / "scripts" / "demo_report.py"
    done = subprocess.run([sys.executable, script, "--model", "nope"], cwd=tmp_path, check=False,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("error: nope: no such model (not a file, nor a registered name:") and done.stderr.count("\n") == 1
    assert not (tmp_path / "separated").exists()


@pytest.mark.slow
def test_demo_report_separates_the_example_and_prints_its_sdr(tmp_path):
    """scripts/demo.sh's report: the shipped model on stempeg's excerpt, scored against its stems."""
    script = Path(__file__).parents[1] / "scripts" / "demo_report.py"
    done = subprocess.run([sys.executable, script], cwd=tmp_path, check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "mean" in done.stdout and "default-" in done.stdout
    assert len(list((tmp_path / "separated").glob("*/*.wav"))) == 4

