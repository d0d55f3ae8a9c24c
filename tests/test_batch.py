"""Catalog batches: presets, --skip-existing, --manifest, --shard and --device of `stems separate`."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.audio import load
from stems.batch import batch_tracks, name_tracks, parse_shard
from stems.cli import app

from conftest import RATE, synth

STEMS = ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def separate(ckpt, *args):
    return CliRunner().invoke(app, ["separate", *map(str, args), "--checkpoint", str(ckpt)], catch_exceptions=False)


def songs(folder: Path, count: int, seconds: float = 0.5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"song{i}.wav" for i in range(count)]
    for i, path in enumerate(paths):
        sf.write(path, synth(seconds, seed=i).T, RATE)
    return paths


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("preset,written", [
    ("karaoke", ["no_vocals.mp3"]),
    ("acapella", ["vocals.wav"]),
])
def test_presets_write_what_they_say(tmp_path, tiny_checkpoint, song_wav, preset, written):
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, song_wav, "-o", out, "--preset", preset)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "my song").iterdir()) == written


def test_dj_preset_writes_a_stem_mp4(tmp_path, tiny_checkpoint, song_wav):
    result = separate(tiny_checkpoint, song_wav, "-o", tmp_path / "out", "--preset", "dj")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["my song.stem.mp4"]


@pytest.mark.parametrize("options,written", [
    (["--format", "flac"], ["no_vocals.flac"]),
    (["--two-stems", "drums"], ["drums.mp3", "no_drums.mp3"]),
    (["--stems", "bass"], ["bass.mp3"]),
])
def test_options_given_win_over_the_preset(tmp_path, tiny_checkpoint, song_wav, options, written):
    out = tmp_path / "out"
    result = separate(tiny_checkpoint, song_wav, "-o", out, "--preset", "karaoke", *options)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "my song").iterdir()) == written


def test_the_instrumental_alone_is_the_two_stems_instrumental(tmp_path, tiny_checkpoint, song_wav):
    alone, pair = tmp_path / "alone", tmp_path / "pair"
    assert separate(tiny_checkpoint, song_wav, "-o", alone, "--stems", "no_vocals", "--float").exit_code == 0
    assert separate(tiny_checkpoint, song_wav, "-o", pair, "--two-stems", "vocals", "--float").exit_code == 0
    assert [p.name for p in (alone / "my song").iterdir()] == ["no_vocals.wav"]
    np.testing.assert_allclose(load(alone / "my song" / "no_vocals.wav", RATE),
                               load(pair / "my song" / "no_vocals.wav", RATE), atol=1e-4)


def test_unknown_preset_and_device_are_usage_errors(tmp_path, tiny_checkpoint, song_wav):
    for option, value in (("--preset", "opera"), ("--device", "tpu")):
        result = separate(tiny_checkpoint, song_wav, "-o", tmp_path / "out", option, value)
        assert result.exit_code == 2 and f"{option} {value}: choose from" in result.output
    assert not (tmp_path / "out").exists()


def test_cuda_without_a_gpu_is_one_line(tmp_path, tiny_checkpoint, tiny_torch_checkpoint, song_wav, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    result = separate(tiny_torch_checkpoint, song_wav, "-o", tmp_path / "out", "--device", "cuda")
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "--device cuda: no CUDA GPU" in result.output
    monkeypatch.setattr("onnxruntime.get_available_providers", lambda: ["CPUExecutionProvider"])
    result = separate(tiny_checkpoint, song_wav, "-o", tmp_path / "out", "--device", "cuda")
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "--device cuda needs onnxruntime-gpu" in result.output and not (tmp_path / "out").exists()


def test_shifts_option(tmp_path, tiny_checkpoint, song_wav):
    result = separate(tiny_checkpoint, song_wav, "-o", tmp_path / "bad", "--shifts", "0")
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "shifts must be between 1 and the hop length" in result.output and not (tmp_path / "bad").exists()
    assert separate(tiny_checkpoint, song_wav, "-o", tmp_path / "one").exit_code == 0
    assert separate(tiny_checkpoint, song_wav, "-o", tmp_path / "two", "--shifts", "2").exit_code == 0
    mix = load(song_wav, RATE)
    one, two = ({s: load(tmp_path / d / song_wav.stem / s, RATE) for s in STEMS} for d in ("one", "two"))
    assert np.abs(sum(two.values()) - mix).max() < 1e-3  # 16-bit files still add up to the mix
    assert np.abs(two["vocals.wav"] - one["vocals.wav"]).max() > 1e-3


def test_skip_existing_keeps_finished_outputs_and_redoes_partial_ones(tmp_path, tiny_checkpoint):
    inputs = songs(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert separate(tiny_checkpoint, tmp_path / "in", "-o", out).exit_code == 0
    finished = {p: p.stat().st_mtime_ns for p in (out / "song0").iterdir()}
    (out / "song1" / "vocals.wav").unlink()  # as a batch stopped between two renames leaves it
    manifest = tmp_path / "m.jsonl"
    result = separate(tiny_checkpoint, tmp_path / "in", "-o", out, "--skip-existing", "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    assert {p: p.stat().st_mtime_ns for p in (out / "song0").iterdir()} == finished
    assert sorted(p.name for p in (out / "song1").iterdir()) == STEMS
    assert [(line["input"], line["status"]) for line in lines(manifest)] == [(str(p), s) for p, s in zip(inputs, ("skipped", "ok"))]


def test_skip_existing_with_overwrite_is_a_usage_error(tmp_path, tiny_checkpoint, song_wav):
    result = separate(tiny_checkpoint, song_wav, "--skip-existing", "--overwrite")
    assert result.exit_code == 2 and "cannot be used together" in result.output


def test_manifest_has_one_self_contained_line_per_input(tmp_path, tiny_checkpoint, song_wav):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio" * 50)
    manifest = tmp_path / "logs" / "run.jsonl"
    result = separate(tiny_checkpoint, song_wav, bad, "-o", tmp_path / "out", "--manifest", manifest)
    assert result.exit_code == 1
    good, failed = lines(manifest)
    assert good["input"] == str(song_wav) and good["status"] == "ok" and good["error"] is None
    assert sorted(good["outputs"]) == ["bass", "drums", "other", "vocals"]
    assert good["outputs"]["vocals"] == str(tmp_path / "out" / "my song" / "vocals.wav")
    assert good["sha256"] == {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in good["outputs"].values()}
    assert good["duration"] == pytest.approx(3.0) and good["seconds"] > 0
    assert failed["status"] == "failed" and "bad.wav" in failed["error"]
    assert failed["outputs"] == {} and failed["duration"] is None
    separate(tiny_checkpoint, song_wav, "-o", tmp_path / "out", "--manifest", manifest)
    assert len(lines(manifest)) == 3  # appended, never rewritten


def test_shards_split_the_sorted_catalog_into_disjoint_parts():
    files = [Path(p) for p in ("/m/b/x.wav", "/m/a/x.wav", "/m/c.mp3", "/m/a/x.wav", "/m/d/e/f.flac", "/m/./c.mp3", "/m/x.wav")]
    catalog = name_tracks(sorted({Path("/m/a/x.wav"), Path("/m/b/x.wav"), Path("/m/c.mp3"), Path("/m/d/e/f.flac"), Path("/m/x.wav")}))
    for count in (1, 2, 3, 8):
        shards = [batch_tracks(files, (index, count)) for index in range(1, count + 1)]
        together = [track for shard in shards for track in shard]
        assert sorted(together) == sorted(catalog)  # names agree across shards: 'x', 'x (2)', 'x (3)'
        assert len(together) == len(set(together))
    assert batch_tracks(files[:2]) == [(Path("/m/b/x.wav"), "x"), (Path("/m/a/x.wav"), "x (2)")]


@pytest.mark.parametrize("text", ["0/4", "5/4", "x", "1/0", "2", "-1/4"])
def test_bad_shards_are_one_line_usage_errors(tmp_path, tiny_checkpoint, song_wav, text):
    with pytest.raises(ValueError):
        parse_shard(text)
    result = separate(tiny_checkpoint, song_wav, "--shard", text)
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0 and "--shard" in result.output


def test_shards_of_a_folder_end_to_end(tmp_path, tiny_checkpoint):
    songs(tmp_path / "in", 3)
    out = tmp_path / "out"
    for index in (1, 2):
        result = separate(tiny_checkpoint, tmp_path / "in", "-o", out, "--shard", f"{index}/2",
                          "--manifest", tmp_path / f"{index}.jsonl")
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["song0", "song1", "song2"]
    merged = lines(tmp_path / "1.jsonl") + lines(tmp_path / "2.jsonl")
    assert sorted(Path(line["input"]).name for line in merged) == ["song0.wav", "song1.wav", "song2.wav"]
