"""The writer registry (every format round-trips a short signal; abort leaves nothing), the atomic
helper, and the batch runner used from Python (manifest lines, skip-existing, a bad file mid-batch)."""

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stems.atomic import atomic_path
from stems.audio import load
from stems.batch import Batch, sigterm_unwinds
from stems.errors import Interrupted, StemsError
from stems.live import Recorder
from stems.separator import Separator
from stems.stemmp4 import NI_STEMS
from stems.writers import FORMATS, PER_STEM_FORMATS, output_format

from conftest import RATE, synth

STEMS = list(NI_STEMS)
# what each format gives back: 16-bit quantisation, mp3's and aac's loss (compared after alignment)
TOLERANCE = {"wav": 1e-4, "flac": 1e-4, "mp3": 0.05, "stem.mp4": 0.05}


def open_on(fmt: str, folder: Path, sample_rate: int = RATE, channels: int = 2):
    output = output_format(fmt)
    targets = {name: folder / f"{name}.{fmt}" for name in output.file_names(STEMS)}
    return output, output.open(targets, sample_rate, channels)


def blocks_of(signals: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {name: wave[:, start:stop] for name, wave in signals.items()}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_round_trips_a_short_signal(tmp_path, fmt):
    signals = {name: 0.5 * synth(0.5, seed=i) for i, name in enumerate(STEMS)}
    output, writer = open_on(fmt, tmp_path)
    if output.mix:
        signals = {"mix": sum(signals.values()) / 4, **signals}
    for start in range(0, signals["drums"].shape[-1], 4096):
        writer.write(blocks_of(signals, start, start + 4096))
    outputs = writer.commit()
    assert set(outputs) == set(signals)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({p.name for p in outputs.values()})  # no temporaries
    if output.bundle is not None:
        return  # test_stemmp4 reads each stream of a .stem.mp4 back; here its mix is the first stream
    for name, wave in signals.items():
        back = load(outputs[name], RATE)
        assert back.shape[0] == 2 and abs(back.shape[1] - wave.shape[1]) < 2048  # mp3 pads its frames
        if fmt == "mp3":
            lag = int(np.argmax(np.correlate(back[0, :8192], wave[0, :4096], "valid")))
            back = back[:, lag:]
        length = min(back.shape[1], wave.shape[1])
        assert np.abs(back[:, :length] - wave[:, :length]).max() < TOLERANCE[fmt]


def test_a_stem_mp4_round_trips_its_mix(tmp_path):
    mix = 0.5 * synth(0.5)
    output, writer = open_on("stem.mp4", tmp_path)
    writer.write({"mix": mix, **{name: mix / 4 for name in STEMS}})
    (target,) = set(writer.commit().values())
    back = load(target, RATE)  # the first audio stream: the mix
    lag = int(np.argmax(np.correlate(back[0, :8192], mix[0, :4096], "valid")))
    length = min(back.shape[1] - lag, mix.shape[1])
    assert length > 0.9 * mix.shape[1]
    assert np.abs(back[:, lag:lag + length] - mix[:, :length]).max() < TOLERANCE["stem.mp4"]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_abort_leaves_nothing(tmp_path, fmt):
    output, writer = open_on(fmt, tmp_path)
    streams = (["mix"] if output.mix else []) + STEMS
    writer.write({name: synth(0.2) for name in streams})
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_the_registry_offers_every_writer_and_refuses_what_a_format_cannot_hold(tmp_path):
    assert set(FORMATS) == {"wav", "flac", "mp3", "stem.mp4"} and PER_STEM_FORMATS == ("wav", "flac", "mp3")
    with pytest.raises(StemsError, match="unknown output format 'ogg'"):
        output_format("ogg")
    with pytest.raises(StemsError, match="a .stem.mp4 holds drums, bass, other, vocals, not vocals"):
        output_format("stem.mp4").check(["vocals"], "song.wav")
    with pytest.raises(StemsError, match="unknown codec 'opus'"):
        output_format("stem.mp4").open({"stems": tmp_path / "a.stem.mp4"}, RATE, 2, codec="opus")


@pytest.mark.parametrize("fmt", ["flac", "stem.mp4"])
def test_the_recorder_writes_any_registered_format(tmp_path, fmt):
    gains = dict.fromkeys(STEMS, 1.0) | {"vocals": 0.0}
    recorder = Recorder(tmp_path, STEMS, 2, RATE, gains, fmt)
    for start in range(0, RATE // 2, 4410):
        recorder({name: synth(0.1, seed=i) for i, name in enumerate(STEMS)})
    written = recorder.close()
    expected = ["stems.stem.mp4"] if fmt == "stem.mp4" else [f"{n}.flac" for n in [*STEMS, "remix"]]
    assert sorted(p.name for p in written) == sorted(expected) == sorted(p.name for p in tmp_path.iterdir())


def test_atomic_path_renames_on_success_and_removes_on_any_exception(tmp_path):
    final = tmp_path / "registry.json"
    final.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(final) as temporary:
            temporary.write_text("half")
            raise KeyboardInterrupt
    assert final.read_text() == "old" and sorted(tmp_path.iterdir()) == [final]
    with atomic_path(final) as temporary:
        temporary.write_text("new")
    assert final.read_text() == "new" and sorted(tmp_path.iterdir()) == [final]
    named = atomic_path(lambda written: tmp_path / f"model-{len(written.read_text())}.pt", tmp_path / ".model.tmp")
    with named as temporary:
        temporary.write_text("12345")
    assert named.final == tmp_path / "model-5.pt" and named.final.read_text() == "12345"


@pytest.fixture
def separator(tiny_checkpoint) -> Separator:
    return Separator.from_checkpoint(tiny_checkpoint)


def songs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"song{i}.wav" for i in range(count)]
    for i, path in enumerate(paths):
        sf.write(path, synth(0.5, seed=i).T, RATE)
    return paths


def test_the_batch_runner_from_python(tmp_path, separator):
    paths = songs(tmp_path / "in", 3)
    paths[1].write_bytes(b"RIFF not really a wav")  # a bad file in the middle of the batch
    manifest = tmp_path / "logs" / "run.jsonl"
    batch = Batch([tmp_path / "in", tmp_path / "missing"])
    assert [name for _, name in batch.tracks] == ["song0", "song1", "song2"]
    assert batch.problems == [(tmp_path / "missing", "no such file or directory")]
    seen = []
    results = batch.run(separator, tmp_path / "out", manifest=manifest, fmt="flac", on_result=seen.append)
    assert [r.status for r in results] == ["ok", "failed", "ok"] and seen == results
    assert "song1.wav" in results[1].error
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["ok", "failed", "ok"]
    assert sorted(lines[0]["outputs"]) == sorted(STEMS) and set(lines[0]["sha256"]) == set(lines[0]["outputs"].values())
    assert sorted(p.name for p in (tmp_path / "out" / "song2").iterdir()) == sorted(f"{n}.flac" for n in STEMS)

    again = Batch([tmp_path / "in"]).run(separator, tmp_path / "out", manifest=manifest, fmt="flac", skip_existing=True)
    assert [r.status for r in again] == ["skipped", "failed", "skipped"]
    assert [json.loads(line)["status"] for line in manifest.read_text().splitlines()][3:] == ["skipped", "failed", "skipped"]


def test_a_shard_of_the_batch_and_an_interrupt_that_stops_it(tmp_path, separator, monkeypatch):
    songs(tmp_path / "in", 4)
    batch = Batch([tmp_path / "in"], shard="2/2")
    assert [name for _, name in batch.tracks] == ["song1", "song3"]

    def stop_on_the_second(path):
        if path.name == "song3.wav":
            raise Interrupted(signal.SIGTERM)

    manifest = tmp_path / "run.jsonl"
    with pytest.raises(Interrupted):
        batch.run(separator, tmp_path / "out", manifest=manifest, on_start=stop_on_the_second)
    assert [json.loads(line)["input"] for line in manifest.read_text().splitlines()] == [str(tmp_path / "in" / "song1.wav")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song1"]


def test_sigterm_unwinds_a_batch_run_and_the_handler_is_put_back():
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with pytest.raises(Interrupted) as caught:
        with sigterm_unwinds():
            signal.raise_signal(signal.SIGTERM)
    assert caught.value.signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
