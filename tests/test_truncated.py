"""Cut-off and too-short inputs are refused with one line naming the file (issue 23); a recording
whose header still holds the placeholder size is read to its end.

Each case cuts a real file's bytes (as a download that stopped would) and checks what every reader
sees through `open_audio`, then the whole batch: the good file beside them is still separated, the
bad ones leave no output, the manifest says `failed` with the message and the exit status is 1."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.audio import load, open_audio, read_block
from stems.lengths import container_data_seconds
from stems.cli import app
from stems.errors import StemsError

from conftest import RATE, synth

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
STEMS = ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]


def cut(path: Path, fraction: float) -> Path:
    """Keep the first `fraction` of the file's bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write(path: Path, seconds: float, **kwargs) -> Path:
    sf.write(path, synth(seconds).T, RATE, **kwargs)
    return path


def encode(wav: Path, out: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), *args, str(out)], check=True)
    return out


def refusal(path: Path) -> str:
    with pytest.raises(StemsError) as caught:
        load(path, RATE)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message[len(f"{path}: "):]


def with_data_size(path: Path, size: int) -> Path:
    """Overwrite the RIFF and data chunk sizes, as a recorder does before it knows the length."""
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[4:8] = data[at + 4: at + 8] = struct.pack("<I", size)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("subtype,fraction,held", [("PCM_16", 0.5, "10.0"), ("PCM_24", 0.75, "15.0")])
def test_a_cut_wav_is_refused(tmp_path, subtype, fraction, held):
    path = cut(write(tmp_path / "half.wav", 20.0, subtype=subtype), fraction)
    assert refusal(path) == f"truncated: the header declares 20.0 s, the file holds {held} s"


@pytest.mark.parametrize("fmt,name", [("RF64", "x.wav"), ("AIFF", "x.aiff")])
def test_a_cut_rf64_or_aiff_is_refused(tmp_path, fmt, name):
    path = cut(write(tmp_path / name, 4.0, format=fmt, subtype="PCM_16"), 0.5)
    assert refusal(path) == "truncated: the header declares 4.0 s, the file holds 2.0 s"


def test_a_header_with_a_millisecond_of_audio_is_refused(tmp_path):
    path = write(tmp_path / "head.wav", 20.0, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:200])
    assert refusal(path) == "truncated: the header declares 20.0 s, the file holds 0.0 s"


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_a_placeholder_size_wav_is_read_to_its_end(tmp_path, size):
    path = write(tmp_path / "recording.wav", 1.0, subtype="PCM_16")
    expected = load(path, RATE)
    with_data_size(path, size)
    assert container_data_seconds(path) is None
    np.testing.assert_array_equal(load(path, RATE), expected)


def test_too_short_to_separate(tmp_path):
    blip = write(tmp_path / "blip.wav", 300 / RATE)
    assert refusal(blip) == "too short to separate (7 ms; at least 46 ms)"
    assert load(write(tmp_path / "shortest.wav", 2048 / RATE), RATE).shape == (2, 2048)


def test_a_cut_flac_is_refused(tmp_path):
    path = cut(write(tmp_path / "half.flac", 20.0), 0.5)
    assert refusal(path).startswith("truncated: the header declares 20.0 s, the file holds 9.")


@needs_ffmpeg
def test_a_cut_mp3_is_refused_where_its_header_counts_frames(tmp_path):
    wav = write(tmp_path / "song.wav", 20.0, subtype="PCM_16")
    for rate in ("44100", "48000"):  # read in place, or decoded and resampled by ffmpeg
        mp3 = cut(encode(wav, tmp_path / f"half{rate}.mp3", "-ar", rate), 0.5)
        assert refusal(mp3) == "truncated: the header declares 20.0 s, the file holds 10.0 s"
    # Without a Xing header an mp3's length is estimated from its size: a cut one cannot be told
    # from a short one, but the estimate (longer than what decodes) no longer makes its end unreadable.
    whole = encode(wav, tmp_path / "noxing.mp3", "-write_xing", "0")
    for seconds in (20.0, 10.0):
        with open_audio(whole, RATE) as (handle, info):
            assert abs(info.duration - seconds) < 0.1
            read_block(handle, 0, info.frames + RATE, whole)  # the separator's context runs past the end
        cut(whole, 0.5)


@needs_ffmpeg
def test_a_cut_m4a_is_refused(tmp_path):
    wav = write(tmp_path / "song.wav", 20.0, subtype="PCM_16")
    front = cut(encode(wav, tmp_path / "front.m4a", "-c:a", "aac", "-movflags", "+faststart"), 0.5)
    assert refusal(front).startswith("truncated: the header declares 20.0 s, the file holds ")
    back = cut(encode(wav, tmp_path / "back.m4a", "-c:a", "aac"), 0.5)  # its index was at the end
    assert refusal(back) == "not an audio file, or it has no audio stream"


@needs_ffmpeg
def test_a_cut_ogg_is_read_to_where_it_ends(tmp_path):
    # Ogg declares no total length: its length is the last page's position, so a cut file is
    # indistinguishable from a shorter one and is separated as it is.
    path = cut(write(tmp_path / "half.ogg", 20.0), 0.5)
    with open_audio(path, RATE) as (_, info):
        assert 8.0 < info.duration < 12.0


def test_a_batch_refuses_the_cut_and_short_files_and_separates_the_good_one(tmp_path, tiny_checkpoint):
    inputs = tmp_path / "in"
    inputs.mkdir()
    write(inputs / "good.wav", 1.0, subtype="PCM_16")
    cut(write(inputs / "half.wav", 20.0, subtype="PCM_16"), 0.5)
    cut(write(inputs / "cut.flac", 4.0), 0.5)
    write(inputs / "blip.wav", 300 / RATE)
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    result = CliRunner().invoke(app, ["separate", str(inputs), "-o", str(out), "--manifest", str(manifest),
                                      "--checkpoint", str(tiny_checkpoint)], catch_exceptions=False)
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # rich wraps long lines
    assert f"error: {inputs / 'half.wav'}: truncated: the header declares 20.0 s, the file holds 10.0 s" in output
    assert f"error: {inputs / 'blip.wav'}: too short to separate (7 ms; at least 46 ms)" in output
    assert "3 of 4 inputs failed" in output
    assert sorted(p.name for p in out.iterdir()) == ["good"]
    assert sorted(p.name for p in (out / "good").iterdir()) == STEMS
    lines = {Path(line["input"]).name: line for line in map(json.loads, manifest.read_text().splitlines())}
    assert lines["good.wav"]["status"] == "ok"
    assert lines["half.wav"]["status"] == "failed"
    assert lines["half.wav"]["error"] == f"{inputs / 'half.wav'}: truncated: the header declares 20.0 s, the file holds 10.0 s"
    assert lines["cut.flac"]["status"] == "failed" and "truncated: the header declares 4.0 s" in lines["cut.flac"]["error"]


@needs_ffmpeg
def test_stream_export_stems_dataset_and_estimates_refuse_a_cut_file(tmp_path, tiny_checkpoint):
    from stems.evaluate import estimates_reader

    half = cut(write(tmp_path / "half.wav", 20.0, subtype="PCM_16"), 0.5)
    stems_dir = tmp_path / "song"
    stems_dir.mkdir()
    for name in ("drums", "bass", "other"):
        write(stems_dir / f"{name}.wav", 1.0, subtype="PCM_16")
    shutil.copy(half, stems_dir / "vocals.wav")
    commands = {
        "stream": ["stream", str(half), "--record", str(tmp_path / "rec"), "--fast", "--checkpoint", str(tiny_checkpoint)],
        "export-stems": ["export-stems", str(stems_dir), "-o", str(tmp_path / "song.stem.mp4")],
        "dataset build": ["dataset", "build", "--mix", str(half), "--vocals", str(stems_dir / "drums.wav"),
                          "-o", str(tmp_path / "data")],
    }
    for command, args in commands.items():
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 1, command
        assert "truncated: the header declares 20.0 s, the file holds 10.0 s" in " ".join(result.output.split()), command
        assert "Traceback" not in result.output, command
    assert not (tmp_path / "rec").exists() and not (tmp_path / "song.stem.mp4").exists()
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.wav"))
    with pytest.raises(StemsError, match="truncated"):
        estimates_reader(tmp_path, ("vocals",))("song", np.zeros((1, 2, RATE), np.float32))
