"""Reliability battery: whatever a user's disk holds, `stems` never crashes with a traceback, never
leaves a partial file, never overwrites good output and never runs anything from a file.

Fuzzing (hypothesis) mutates real wav/flac/mp3/ogg/m4a files; every other hostile case is a named
test. Interrupt tests run the real console script in a subprocess and send it signals."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stems import Separator
from stems.audio import load
from stems.cli import app
from stems.errors import StemsError
from stems.files import separate_file

from conftest import RATE, synth, wait_for

STEMS = ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
EXE = os.path.join(os.path.dirname(sys.executable), "stems")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def separate(ckpt, *args):
    return CliRunner().invoke(app, ["separate", *map(str, args), "--checkpoint", str(ckpt)], catch_exceptions=False)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def separator(tiny_checkpoint):
    return Separator.from_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    """Half-second real files in each format, as bytes, for the fuzzer to corrupt."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    root = tmp_path_factory.mktemp("seeds")
    sf.write(root / "s.wav", synth(0.5).T, RATE, subtype="PCM_16")
    sf.write(root / "s.flac", synth(0.5).T, RATE)
    for ext, codec in (("mp3", "libmp3lame"), ("ogg", "libvorbis"), ("m4a", "aac")):
        ffmpeg("-i", str(root / "s.wav"), "-c:a", codec, str(root / f"s.{ext}"))
    return {ext: (root / f"s.{ext}").read_bytes() for ext in ("wav", "flac", "mp3", "ogg", "m4a")}


@st.composite
def damaged(draw, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    ext = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[ext])
    how = draw(st.sampled_from(["truncate", "header", "bytes", "random"]))
    if how == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif how == "header":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, min(63, len(data) - 1)))] = draw(st.integers(0, 255))
    elif how == "bytes":
        for _ in range(draw(st.integers(1, 32))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    else:
        data = bytearray(draw(st.binary(max_size=4096)))
    return ext, bytes(data)


@needs_ffmpeg
def test_damaged_files_give_stems_or_one_clear_error(tmp_path_factory, separator, seeds):
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(case=damaged(seeds))
    def check(case):
        ext, data = case
        root = tmp_path_factory.mktemp("fuzz")
        path = root / f"damaged.{ext}"
        path.write_bytes(data)
        out = root / "out"
        try:
            result = separate_file(separator, path, out)
        except StemsError as error:  # the only failure allowed: one line naming the file
            assert str(path) in str(error) and "\n" not in str(error)
            assert files_under(out) == []
            return
        assert sorted(p.name for p in files_under(out)) == STEMS
        for stem in result.outputs.values():
            assert np.isfinite(sf.read(stem)[0]).all()

    check()


def _write(path: Path, audio: np.ndarray, rate: int = RATE, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, rate, subtype=subtype)
    return path


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_every_wav_sample_format(tmp_path, tiny_checkpoint, subtype):
    path = _write(tmp_path / f"{subtype}.wav", synth(1.0), subtype=subtype)
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    stems = [load(p, RATE) for p in files_under(tmp_path / "out")]
    np.testing.assert_allclose(sum(stems), load(path, RATE), atol=4 / 32768)


@pytest.mark.parametrize("rate", [8000, 192000])
def test_extreme_sample_rates_are_resampled(tmp_path, tiny_checkpoint, rate):
    path = _write(tmp_path / "x.wav", synth(1.0, rate=rate), rate)
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 0 and f"resampled from {rate} Hz" in result.output
    assert {sf.info(p).samplerate for p in files_under(tmp_path / "out")} == {RATE}


def test_shortest_input_silence_and_dc(tmp_path, separator):  # shorter is refused: tests/test_truncated.py
    cases = {"shortest": np.full((2, 2048), 0.5, np.float32), "silence": np.zeros((2, RATE), np.float32),
             "dc": np.full((2, RATE), 0.3, np.float32) + 0.01 * synth(1.0)}
    for name, audio in cases.items():
        path = _write(tmp_path / f"{name}.wav", audio, subtype="FLOAT")
        result = separate_file(separator, path, tmp_path / "out", float_output=True)
        stems = [sf.read(p, dtype="float32")[0].T for p in result.outputs.values()]
        assert all(s.shape == audio.shape and np.isfinite(s).all() for s in stems), name
        np.testing.assert_allclose(sum(stems), audio, atol=1e-4, err_msg=name)
        if name == "silence":
            assert max(np.abs(s).max() for s in stems) == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_samples_are_a_clear_error(tmp_path, tiny_checkpoint, bad):
    audio = synth(1.0)
    audio[1, 3000] = bad
    path = _write(tmp_path / "bad.wav", audio, subtype="FLOAT")
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "bad.wav: audio contains NaN or infinite samples" in result.output
    assert files_under(tmp_path / "out") == []


def test_full_scale_square_wave_reports_clipping(tmp_path, tiny_checkpoint):
    square = np.sign(np.sin(2 * np.pi * 100 * np.arange(RATE) / RATE)).astype(np.float32)
    path = _write(tmp_path / "square.wav", np.stack([square, -square]), subtype="FLOAT")
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 0 and "samples clipped" in result.output


@needs_ffmpeg
def test_video_with_and_without_audio(tmp_path, tiny_checkpoint):
    wav = _write(tmp_path / "a.wav", synth(1.0))
    with_audio, without = tmp_path / "clip.mp4", tmp_path / "silent.mp4"
    video = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1"]
    ffmpeg(*video, "-i", str(wav), "-c:v", "mpeg4", "-c:a", "aac", "-shortest", str(with_audio))
    ffmpeg(*video, "-c:v", "mpeg4", str(without))
    result = separate(tiny_checkpoint, with_audio, without, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "silent.mp4: not an audio file, or it has no audio stream" in result.output
    assert sorted(p.name for p in (tmp_path / "out" / "clip").iterdir()) == STEMS


def test_directory_named_like_audio_and_awkward_names(tmp_path, tiny_checkpoint):
    (tmp_path / "in" / "folder.wav").mkdir(parents=True)
    for name in ("with spaces.wav", "ünïcødé ♫.wav", "-leading dash.wav"):
        _write(tmp_path / "in" / name, synth(0.5))
    result = separate(tiny_checkpoint, tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["-leading dash", "with spaces", "ünïcødé ♫"]
    alone = separate(tiny_checkpoint, "--", tmp_path / "in" / "folder.wav", "-o", tmp_path / "out2")
    assert alone.exit_code == 1 and "folder.wav: no audio files in this directory" in alone.output


def test_symlinks_and_symlink_loops_in_input_folders(tmp_path, tiny_checkpoint):
    real = _write(tmp_path / "music" / "real.wav", synth(0.5))
    (tmp_path / "music" / "loop").symlink_to(tmp_path / "music")  # a folder that contains itself
    (tmp_path / "music" / "linked.wav").symlink_to(real)
    (tmp_path / "music" / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    result = separate(tiny_checkpoint, tmp_path / "music", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["linked", "real"]


def test_a_file_that_disappears_mid_batch(tmp_path, tiny_checkpoint, monkeypatch):
    first, second = (_write(tmp_path / "in" / f"{n}.wav", synth(0.5)) for n in ("a", "b"))
    import stems.files

    original = stems.files.open_audio

    def open_and_delete_the_next(path, rate):
        if path == first:
            second.unlink()
        return original(path, rate)

    monkeypatch.setattr(stems.files, "open_audio", open_and_delete_the_next)
    result = separate(tiny_checkpoint, tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "b.wav: no such file" in result.output
    assert sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == STEMS


def test_disk_full_while_writing_leaves_nothing_and_keeps_old_outputs(tmp_path, tiny_checkpoint, monkeypatch):
    path = _write(tmp_path / "song.wav", synth(8.0))
    old = tmp_path / "out" / "song" / "drums.wav"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"good old output")
    writes = {"count": 0}
    original = sf.SoundFile.write

    def write_until_full(self, data):
        writes["count"] += 1
        if writes["count"] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write_until_full)
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out", "--overwrite")
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert files_under(tmp_path / "out") == [old] and old.read_bytes() == b"good old output"


def test_an_mp3_encode_that_fails_midway_leaves_nothing(tmp_path, tiny_checkpoint, monkeypatch):
    import stems.audio

    def encode_half_then_fail(args, source):
        Path(args[-1]).write_bytes(b"\xff\xfb" * 1000)
        raise StemsError(f"{source}: ffmpeg was stopped")

    path = _write(tmp_path / "song.wav", synth(1.0))
    monkeypatch.setattr(stems.audio, "run_ffmpeg", encode_half_then_fail)
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out", "--preset", "karaoke")
    assert result.exit_code == 1 and "ffmpeg was stopped" in result.output
    assert files_under(tmp_path / "out") == []


def test_missing_ffmpeg_gives_an_install_hint(tmp_path, tiny_checkpoint, monkeypatch, seeds):
    path = tmp_path / "song.m4a"
    path.write_bytes(seeds["m4a"])
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "ffmpeg not found: install it (apt-get install" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_batch_keeps_finished_outputs_and_removes_the_rest(tmp_path, tiny_checkpoint, signum, status):
    for i in range(4):
        _write(tmp_path / "in" / f"song{i}.wav", synth(30.0, seed=i))
    out = tmp_path / "out"
    process = subprocess.Popen([EXE, "separate", str(tmp_path / "in"), "-o", str(out), "--checkpoint",
                                str(tiny_checkpoint)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: len(list(out.glob("song0/*.wav"))) == 4 and list(out.glob("song1/.*part*")))
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err.decode()[-500:]
    assert "interrupted" in err.decode() and "Traceback" not in err.decode()
    finished = [d.name for d in out.iterdir() if any(d.iterdir())]
    assert "song0" in finished
    for folder in finished:
        assert sorted(p.name for p in (out / folder).iterdir()) == STEMS
        assert {sf.info(p).frames for p in (out / folder).iterdir()} == {30 * RATE}
    assert not [p for p in files_under(out) if ".part" in p.name]


@pytest.mark.slow
def test_a_batch_stopped_by_sigterm_resumes_with_skip_existing(tmp_path, tiny_checkpoint):
    for i in range(6):
        _write(tmp_path / "in" / f"song{i}.wav", synth(3.0, seed=i))
    out, manifest = tmp_path / "out", tmp_path / "run.jsonl"
    command = [EXE, "separate", str(tmp_path / "in"), "-o", str(out), "--checkpoint", str(tiny_checkpoint),
               "--skip-existing", "--manifest", str(manifest)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: sorted(p.name for p in out.glob("song0/*")) == STEMS)  # (a glob "*.wav" matches the .part files too)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()[-500:]
    finished = {p: p.stat().st_mtime_ns for p in files_under(out)}
    done = sorted({p.parent.name for p in finished})
    assert "song0" in done and len(done) < 6
    first_run = manifest.read_text().splitlines()
    resumed = subprocess.run(command, capture_output=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr.decode()[-500:]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # the finished tracks were not written again
    assert sorted(p.name for p in out.iterdir()) == [f"song{i}" for i in range(6)]
    assert all(sorted(p.name for p in (out / f"song{i}").iterdir()) == STEMS for i in range(6))
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert {line["status"] for line in lines[: len(first_run)]} <= {"ok"}  # (the signal may beat the last finished line)
    last = {Path(line["input"]).stem: line["status"] for line in lines}
    assert last == {f"song{i}": "skipped" if f"song{i}" in done else "ok" for i in range(6)}


@pytest.mark.slow
def test_sigterm_during_training_exits_143_and_the_run_resumes(tmp_path):
    from test_train import _settings

    run_dir = tmp_path / "run"
    process = subprocess.Popen([EXE, "train", *_settings(tmp_path, steps=400, save_every=5), "--out", str(run_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: (run_dir / "state.pt").exists() or process.poll() is not None, timeout=300)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err.decode()[-500:]
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".")) == []  # no half-written state
    resumed = subprocess.run([EXE, "train", "--resume", str(run_dir), "--set", "train.steps=12"],
                             capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()[-500:]
    assert list(run_dir.glob("last-*.pt"))


def test_ffmpeg_timeout_is_a_clear_error(tmp_path, tiny_checkpoint, monkeypatch, seeds):
    import stems.audio

    path = tmp_path / "slow.m4a"
    path.write_bytes(seeds["m4a"])
    monkeypatch.setattr(stems.audio, "FFMPEG_TIMEOUT_S", 0.001)
    result = separate(tiny_checkpoint, path, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "slow.m4a: ffmpeg timed out" in result.output
    assert files_under(tmp_path / "out") == []


def test_16_bit_output_rounds_exactly_as_libsndfile(tmp_path):
    from stems.audio import StemWriter

    audio = np.concatenate([synth(1.0), np.array([[1.0, -1.0, 0.5 / 32767, -1.5 / 32767], [0.0] * 4], np.float32)], axis=1)
    writer = StemWriter(tmp_path / "ours.wav", RATE, 2, "wav")
    writer.write(audio)
    writer.commit()
    sf.write(tmp_path / "libsndfile.wav", audio.T, RATE, subtype="PCM_16")
    ours, theirs = (sf.read(tmp_path / name, dtype="int16")[0] for name in ("ours.wav", "libsndfile.wav"))
    np.testing.assert_array_equal(ours, theirs)


def test_a_signal_while_opening_the_stems_leaves_no_temporary(tmp_path, monkeypatch):
    import stems.audio
    from stems.audio import StemFiles

    class InterruptedOnOther(stems.audio.StemWriter):
        def __init__(self, target, *args, **kwargs):
            super().__init__(target, *args, **kwargs)
            if target.stem == "other":  # its file exists, StemFiles does not hold it yet
                raise KeyboardInterrupt

    monkeypatch.setattr(stems.audio, "StemWriter", InterruptedOnOther)
    targets = {name[:-4]: tmp_path / name for name in STEMS}
    with pytest.raises(KeyboardInterrupt):
        StemFiles(targets, RATE, 2, "wav")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt in this process even where the tests started with SIGINT
    ignored (a background job), where Python does not install its handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_signal_between_the_renames_still_puts_every_stem_in_place(tmp_path, monkeypatch, sigint_raises):
    import stems.audio
    from stems.audio import StemFiles

    replace = os.replace

    def replace_then_signal(source, target):
        replace(source, target)
        if Path(target).stem == "drums":  # the first of four renames
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(stems.audio.os, "replace", replace_then_signal)
    targets = {name[:-4]: tmp_path / name for name in STEMS}
    files = StemFiles(targets, RATE, 2, "wav")
    files.write({name: np.zeros((2, 100), dtype=np.float32) for name in targets})
    with pytest.raises(KeyboardInterrupt):
        files.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(STEMS)


class _RaisesSigtermWhenCollected:
    def __del__(self):
        signal.raise_signal(signal.SIGTERM)  # the handler runs here, where Python drops what it raises


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_python_drops_inside_a_destructor_still_stops_the_batch(tmp_path, tiny_checkpoint):
    from stems.batch import Batch
    from stems.engine import load_engine
    from stems.errors import Interrupted, pending_interrupt

    for i in range(3):
        _write(tmp_path / "in" / f"song{i}.wav", synth(2.0, seed=i))
    separator = Separator(load_engine(str(tiny_checkpoint)))
    started = []

    def on_start(path):
        started.append(path.stem)
        if path.stem == "song1":
            _RaisesSigtermWhenCollected()  # collected at once: "Exception ignored in ... __del__"

    with pytest.raises(Interrupted) as caught:
        Batch([tmp_path / "in"]).run(separator, tmp_path / "out", on_start=on_start)
    assert caught.value.signum == signal.SIGTERM
    assert started == ["song0", "song1"]  # song1 is stopped at its first chunk, song2 never starts
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in files_under(tmp_path / "out")) == [
        f"song0/{name}" for name in STEMS]
    assert pending_interrupt() is None  # the batch that installed the handler forgets the signal
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
