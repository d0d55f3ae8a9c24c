"""Streaming equals offline separation; bounded queues; clean shutdown."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.cli import app
from stems.config import STFTConfig
from stems.reconstruct import output_groups
from stems.separator import Separator
from stems.stream import StreamPipeline, latency_samples, stream_blocks

from conftest import RATE, make_model, synth, wait_for, torch_separator


def _blocks(audio, size):
    return (audio[:, i: i + size] for i in range(0, audio.shape[1], size))


def _concat(outputs, names):
    outputs = list(outputs)
    return {name: np.concatenate([o[name] for o in outputs], axis=1) for name in names}


@pytest.mark.parametrize("lookahead,channels,block,gate_db", [(-1, 2, 882, -30.0), (1, 2, 1500, -30.0), (0, 1, 4096, -30.0),
                                                               (2, 2, 333, -30.0), (1, 2, 100, -30.0), (1, 2, 700, -10.0)])
def test_streaming_equals_offline(lookahead, channels, block, gate_db):
    """(The gate acts in some frames of the small random network's masks, in more at -10 dB.)"""
    separator = torch_separator(make_model(lookahead_frames=lookahead), gate_db=gate_db)
    audio = synth(2.1, channels=channels, seed=4)
    offline = separator.separate(audio, RATE, mask="soft")
    groups = output_groups(separator.sources)
    streamed = _concat(stream_blocks(separator, _blocks(audio, block), channels, groups, "soft"), groups)
    for name in groups:
        assert streamed[name].shape == audio.shape
        assert np.abs(streamed[name] - offline[name]).max() < 1e-4


def test_latency_is_lookahead_plus_window():
    assert latency_samples(torch_separator(make_model(lookahead_frames=1))) == 1024 + 2048


def test_pipeline_threads_equal_offline_and_a_slow_live_consumer_drops_but_stays_bounded():
    """(Soft masks: with binary ones, a near-tie between two stems' logits in the random network,
    1e-7 apart between the streamed and the whole-signal computation, gives one bin to another stem.)"""
    separator = torch_separator(make_model())
    audio = synth(2.0, seed=5)
    groups = output_groups(separator.sources)
    received = []
    pipeline = StreamPipeline(separator, groups, "soft", 2, _blocks(audio, 512), [received.append])
    stats = pipeline.run()
    offline = separator.separate(audio, RATE, mask="soft")
    streamed = _concat(received, groups)
    assert all(np.abs(streamed[n] - offline[n]).max() < 1e-4 for n in groups)
    assert stats.dropped_in == stats.dropped_out == 0 and stats.blocks == len(range(0, audio.shape[1], 512))

    depths = []

    def slow(out):
        depths.append(max(pipeline_live.depths().values()))
        time.sleep(0.05)

    pipeline_live = StreamPipeline(separator, groups, "binary", 2, _blocks(audio, 256), [slow], live=True, queue_blocks=4)
    stats = pipeline_live.run()
    assert stats.dropped_out > 0  # the consumer could not keep up: blocks were dropped, not queued
    assert max(depths) <= 4


@pytest.fixture
def song(tmp_path):
    path = tmp_path / "song.wav"
    sf.write(path, synth(3.0, seed=6).T, RATE, subtype="FLOAT")
    return path


def test_stream_command_records_latency_compensated_stems(tmp_path, tiny_checkpoint, song):
    out = tmp_path / "rec"
    result = CliRunner().invoke(app, ["stream", str(song), "--record", str(out), "--gains", "vocals=0",
                                      "--checkpoint", str(tiny_checkpoint), "--mask", "soft", "--fast"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["bass.wav", "drums.wav", "other.wav", "remix.wav", "vocals.wav"]
    offline = Separator.from_checkpoint(tiny_checkpoint).separate(sf.read(song, dtype="float32")[0].T, RATE, mask="soft")
    for name, wave in offline.items():
        recorded = sf.read(out / f"{name}.wav", dtype="float32")[0].T
        assert recorded.shape == wave.shape and np.abs(recorded - np.clip(wave, -1, 1)).max() < 1e-4
    karaoke = sf.read(out / "remix.wav", dtype="float32")[0].T
    assert np.abs(karaoke - (offline["drums"] + offline["bass"] + offline["other"])).max() < 2e-4


def test_stream_device_options_without_portaudio_give_a_clear_error(tiny_checkpoint, song):
    try:
        import sounddevice  # noqa: F401
        pytest.skip("sounddevice is installed here")
    except (ImportError, OSError):
        pass
    result = CliRunner().invoke(app, ["stream", "--input-device", "0", "--checkpoint", str(tiny_checkpoint)])
    assert result.exit_code == 1 and "sounddevice" in result.output and "Traceback" not in result.output
    listed = CliRunner().invoke(app, ["stream", "--list-devices"])
    assert listed.exit_code == 1 and "libportaudio2" in listed.output


def test_a_bad_gate_is_one_line_and_records_nothing(tmp_path, tiny_checkpoint, song):
    result = CliRunner().invoke(app, ["stream", str(song), "--record", str(tmp_path / "rec"), "--fast",
                                      "--checkpoint", str(tiny_checkpoint), "--gate-db", "nan"])
    assert result.exit_code == 1 and "gate_db must be a level in dB or -inf (off), got nan" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "rec").exists()


def test_sigint_while_streaming_keeps_complete_files(tmp_path, tiny_checkpoint):
    path = tmp_path / "long.wav"
    sf.write(path, synth(20.0, seed=7).T, RATE)
    exe = os.path.join(os.path.dirname(sys.executable), "stems")
    process = subprocess.Popen([exe, "stream", str(path), "--record", str(tmp_path / "rec"), "--realtime",
                                "--checkpoint", str(tiny_checkpoint)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: any((tmp_path / "rec").glob("*")))  # recording has started: the handlers are in place
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()[-500:]
    files = sorted((tmp_path / "rec").iterdir())
    assert [p.name for p in files] == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    lengths = {sf.info(p).frames for p in files}
    assert len(lengths) == 1 and 0 < lengths.pop() < 20 * RATE  # complete, readable, cut where it stopped
