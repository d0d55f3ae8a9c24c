"""Ensembles: members that each separate with their own STFT, their stems averaged, offline and
streaming, from a file that names its members and their sha256."""

import json
import shutil

import numpy as np
import pytest
from conftest import RATE, make_model, run_script, synth
from typer.testing import CliRunner

from stems import registry
from stems.checkpoint import load_checkpoint, save_checkpoint
from stems.cli import app
from stems.config import STFTConfig
from stems.engine import load_engine, load_engines
from stems.ensemble import read_ensemble, write_ensemble
from stems.errors import StemsError
from stems.export import export_onnx, register
from stems.model import MaskNet
from stems.reconstruct import output_groups
from stems.separator import Separator
from stems.stream import StreamPipeline, latency_samples, stream_blocks
from stems.torch_engine import TorchEngine

LONG = STFTConfig(n_fft=4096, hop_length=1024)


def long_model(lookahead: int = -1) -> MaskNet:
    """A small random network on the 4096-point STFT (2049 bins)."""
    return make_model(seed=7, lookahead_frames=lookahead, stft=LONG)


def engines(lookahead: int = -1) -> list[TorchEngine]:
    return [TorchEngine(make_model(seed=5, lookahead_frames=lookahead), STFTConfig()),
            TorchEngine(long_model(lookahead), LONG)]


@pytest.mark.parametrize("channels,shifts", [(2, 1), (1, 1), (2, 2)])
def test_ensemble_stems_are_the_mean_of_each_members_stems_and_add_up_to_the_mix(channels, shifts):
    audio = synth(3.1, channels=channels, seed=2)
    members = engines()
    together = Separator(members, chunk_frames=29, shifts=shifts).separate(audio, RATE, mask="soft")
    alone = [Separator(engine, shifts=shifts).separate(audio, RATE, mask="soft") for engine in members]
    assert not np.allclose(alone[0]["vocals"], alone[1]["vocals"], atol=1e-3)  # the members differ
    for name, wave in together.items():
        assert wave.shape == audio.shape
        np.testing.assert_allclose(wave, (alone[0][name] + alone[1][name]) / 2, atol=1e-5)
    np.testing.assert_allclose(sum(together.values()), audio, atol=1e-4)


def test_ensemble_of_one_model_twice_is_that_model():
    audio = synth(2.0, seed=3)
    engine = TorchEngine(make_model(seed=5), STFTConfig())
    np.testing.assert_allclose(Separator([engine, engine]).separate(audio, RATE, mask="soft")["drums"],
                               Separator(engine).separate(audio, RATE, mask="soft")["drums"], atol=1e-6)


@pytest.mark.parametrize("lookahead,block", [(-1, 700), (1, 1500)])
def test_ensemble_streaming_equals_offline_at_the_slowest_members_latency(lookahead, block):
    separator = Separator(engines(lookahead))
    audio = synth(2.3, seed=4)
    offline = separator.separate(audio, RATE, mask="soft")
    groups = output_groups(separator.sources)
    outputs = list(stream_blocks(separator, (audio[:, i: i + block] for i in range(0, audio.shape[1], block)),
                                 2, groups, "soft"))
    for name in groups:
        streamed = np.concatenate([out[name] for out in outputs], axis=1)
        assert streamed.shape == audio.shape
        assert np.abs(streamed - offline[name]).max() < 1e-4
    each = [e.lookahead * 1024 + e.stft.n_fft for e in separator.engines]
    assert latency_samples(separator) == max(each) == max(latency_samples(Separator(e)) for e in separator.engines)


def test_ensemble_streams_through_the_threaded_pipeline_and_ends_with_the_signal():
    separator = Separator(engines(lookahead=1))
    audio = synth(1.7, seed=9)
    groups = output_groups(separator.sources, two_stems="vocals")
    received = []
    StreamPipeline(separator, groups, "soft", 2, (audio[:, i: i + 512] for i in range(0, audio.shape[1], 512)),
                   [received.append]).run()
    offline = separator.separate(audio, RATE, two_stems="vocals", mask="soft")
    for name in groups:
        streamed = np.concatenate([out[name] for out in received], axis=1)
        assert streamed.shape == audio.shape and np.abs(streamed - offline[name]).max() < 1e-4


def test_members_must_share_hop_and_sources():
    other_hop = TorchEngine(make_model(seed=1), STFTConfig(hop_length=512))
    with pytest.raises(ValueError, match="hop length"):
        Separator([TorchEngine(make_model(), STFTConfig()), other_hop])


def _shipped(tmp_path, monkeypatch):
    """A checkpoint directory with two members (2048- and 4096-point STFTs), .pt and .onnx each,
    and their ensemble registered as "pair"."""
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    files = []
    for i, (model, stft) in enumerate([(make_model(seed=5), STFTConfig()), (long_model(), LONG)], 1):
        pt = save_checkpoint(model, stft, {"training": {"data": [f"member {i} (tests)"]}}, tmp_path, f"pair-m{i}")
        files.append({"torch": pt, "onnx": export_onnx(*load_checkpoint(pt), tmp_path, f"pair-m{i}")})
    path = write_ensemble(files, {"default_mask": "soft", "metrics": {"note": "tests"}}, tmp_path, "pair")
    register("pair", {"ensemble": path}, tmp_path)
    return path, files


def test_a_registered_ensemble_loads_by_name_in_either_runtime_and_separates_as_its_members(tmp_path, monkeypatch):
    path, files = _shipped(tmp_path, monkeypatch)
    audio = synth(2.0, seed=6)
    for runtime in ("onnx", "torch"):
        separator = Separator.from_checkpoint("pair", runtime=runtime)
        assert [e.card["path"] for e in separator.engines] == [str(f[runtime]) for f in files]
        assert separator.card["path"] == str(path) and separator.default_mask == "soft"
        members = [Separator.from_checkpoint(str(f[runtime])).separate(audio, RATE, mask="soft") for f in files]
        together = separator.separate(audio, RATE)
        np.testing.assert_allclose(together["bass"], (members[0]["bass"] + members[1]["bass"]) / 2, atol=1e-5)
    cards = [load_engines("pair", runtime)[1] for runtime in ("onnx", "torch")]
    assert cards[0]["weights_sha256"] == cards[1]["weights_sha256"]  # the same networks in either runtime
    content = registry.registry(tmp_path)
    assert content["models"]["pair"] == {"ensemble": path.name}
    assert set(content["sha256"]) == {path.name, *(f[r].name for f in files for r in ("onnx", "torch"))}
    shown = CliRunner().invoke(app, ["info", "pair"])
    assert shown.exit_code == 0, shown.output
    assert "an ensemble of 2 models" in shown.output and "n_fft 4096" in shown.output and "member 2 (tests)" in shown.output


def test_an_altered_or_missing_member_is_refused_by_name(tmp_path, monkeypatch):
    path, files = _shipped(tmp_path, monkeypatch)
    member = files[1]["onnx"]
    data = member.read_bytes()
    member.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(StemsError, match=f"{member.name}: sha256 does not match {path.name}"):
        read_ensemble(path)
    member.unlink()
    with pytest.raises(StemsError, match=f"{member.name}: model file not found \\(a member of {path.name}\\)"):
        load_engines("pair")
    with pytest.raises(StemsError, match="an ensemble of models"):
        load_checkpoint("pair")
    foreign = tmp_path / "notes-00000000.json"
    foreign.write_text(json.dumps({"hello": 1}))
    with pytest.raises(StemsError, match="sha256 does not match its name"):
        load_engines(foreign)
    foreign = tmp_path / "notes.json"
    foreign.write_text(json.dumps({"hello": 1}))
    with pytest.raises(StemsError, match="notes.json: not a stems ensemble"):
        load_engines(foreign)


def test_load_engine_wants_one_model(tmp_path, monkeypatch):
    path, _ = _shipped(tmp_path, monkeypatch)
    with pytest.raises(StemsError, match="an ensemble of 2 models, where one model is needed"):
        load_engine(path)


def test_registering_replaces_files_no_model_names_and_keeps_an_ensembles_members(tmp_path, monkeypatch):
    path, files = _shipped(tmp_path, monkeypatch)
    # a member's files registered under a name of their own, then that name replaced: the files stay (the ensemble needs them)
    register("single", files[0], tmp_path)
    shutil.copy(files[1]["torch"], tmp_path / files[1]["torch"].name.replace("pair-m2", "solo"))
    register("single", {"torch": tmp_path / files[1]["torch"].name.replace("pair-m2", "solo")}, tmp_path)
    assert registry.registry(tmp_path)["models"]["single"] == {"onnx": files[0]["onnx"].name,
                                                               "torch": files[1]["torch"].name.replace("pair-m2", "solo")}
    assert files[0]["torch"].is_file()  # replaced for "single", still a member of "pair"
    # the ensemble replaced by a plain model: its file and members no other model names are removed
    register("pair", {"onnx": files[1]["onnx"]}, tmp_path)
    assert not path.exists() and not files[1]["torch"].exists() and not files[0]["torch"].exists()
    assert files[0]["onnx"].is_file() and files[1]["onnx"].is_file()  # named by "single" and "pair"
    assert set(registry.registry(tmp_path)["sha256"]) == {files[0]["onnx"].name, files[1]["onnx"].name,
                                                         files[1]["torch"].name.replace("pair-m2", "solo")}


def test_make_ensemble_script_then_info_and_separate(tmp_path):
    members = [save_checkpoint(model, stft, {"training": {"data": [f"set {i}"], "step": 10 * i}}, tmp_path, f"m{i}")
               for i, (model, stft) in enumerate([(make_model(seed=5), STFTConfig()), (long_model(), LONG)], 1)]
    made = run_script("make_ensemble.py", *members, "--out", tmp_path / "ens")
    assert made.returncode == 0, made.stderr
    path = next((tmp_path / "ens").glob("ensemble-*.json"))
    shown = CliRunner().invoke(app, ["info", str(path)], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "an ensemble of 2 models" in shown.output and "set 1; set 2" in shown.output and "10 + 20" in shown.output
    audio = synth(1.5, seed=8)
    alone = [Separator.from_checkpoint(str(m)).separate(audio, RATE, mask="soft") for m in members]
    together = Separator.from_checkpoint(str(path)).separate(audio, RATE, mask="soft")
    np.testing.assert_allclose(together["other"], (alone[0]["other"] + alone[1]["other"]) / 2, atol=1e-5)
    other_hop = save_checkpoint(make_model(), STFTConfig(hop_length=512), {}, tmp_path, "hop512")
    refused = run_script("make_ensemble.py", members[0], other_hop, "--out", tmp_path / "x")
    assert refused.returncode == 2 and "hop length" in refused.stderr and refused.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()
