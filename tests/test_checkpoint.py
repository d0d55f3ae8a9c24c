import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from stems.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from stems.config import STFTConfig
from stems.errors import StemsError
from stems.export import register
from stems.separator import Separator

from conftest import RATE, make_model, run_script, synth, torch_separator


def test_save_load_gives_identical_outputs(tmp_path):
    model = make_model(seed=5)
    path = save_checkpoint(model, STFTConfig(), {"metrics": {"x": 1}}, tmp_path, "m")
    assert path.name.startswith("m-") and len(path.stem) == len("m-") + 8
    loaded, stft, card = load_checkpoint(path)
    assert card["metrics"] == {"x": 1} and card["context_frames"] == 13
    audio = synth(2.0)
    a = torch_separator(model).separate(audio, RATE, mask="soft")
    b = torch_separator(loaded).separate(audio, RATE, mask="soft")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_truncated_checkpoint(tmp_path, tiny_torch_checkpoint):
    bad = tmp_path / "cut.pt"
    bad.write_bytes(tiny_torch_checkpoint.read_bytes()[:5000])
    with pytest.raises(StemsError, match="cut.pt: not a readable stems checkpoint"):
        load_checkpoint(bad)


def test_sha_mismatch(tmp_path, tiny_torch_checkpoint):
    bad = tmp_path / "tiny-00000000.pt"
    bad.write_bytes(tiny_torch_checkpoint.read_bytes())
    with pytest.raises(StemsError, match="sha256 does not match"):
        load_checkpoint(bad)


class _RunsCode:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path(__import__('os').environ['STEMS_PWNED']).write_text('ran')",))


def test_pickle_payload_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("STEMS_PWNED", str(marker))
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"format": FORMAT, "card": "{}", "state_dict": _RunsCode()}, handle)
    with pytest.raises(StemsError, match="evil.pt"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_foreign_and_wrong_files(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(StemsError, match="not a stems checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(StemsError, match="notes.pt"):
        load_checkpoint(text)
    with pytest.raises(StemsError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_wrong_architecture_and_bad_card(tmp_path, tiny_torch_checkpoint):
    payload = torch.load(tiny_torch_checkpoint, weights_only=True)
    card = json.loads(payload["card"])
    card["model_config"]["widths"] = [8, 8, 8]
    torch.save(payload | {"card": json.dumps(card)}, tmp_path / "shape.pt")
    with pytest.raises(StemsError, match="weights do not fit"):
        load_checkpoint(tmp_path / "shape.pt")
    torch.save(payload | {"card": "{not json"}, tmp_path / "card.pt")
    with pytest.raises(StemsError, match="not valid JSON"):
        load_checkpoint(tmp_path / "card.pt")


def test_shipped_models_load_small_and_carry_their_valid_table():
    """Every registered model ships as ONNX and torch files, or as an ensemble naming such files
    for each member, whose sha256 the registry records; both runtimes load, and they run the same
    networks."""
    from stems.engine import load_engines
    from stems.registry import CHECKPOINT_DIR, registry, sha256_of

    shipped = registry()
    assert {"default", "fast", "quality", "lowlatency"} <= set(shipped["models"])
    for file, digest in shipped["sha256"].items():
        assert (CHECKPOINT_DIR / file).stat().st_size < 20e6, file
        assert digest == sha256_of(CHECKPOINT_DIR / file), file
    means = {}
    for name, files in shipped["models"].items():
        assert set(files) in ({"onnx", "torch"}, {"ensemble"}), name
        onnx, card = load_engines(name, "onnx")
        torch_engines, torch_card = load_engines(name, "torch")
        assert all(e.card["path"].endswith(".onnx") for e in onnx) and all(e.card["path"].endswith(".pt") for e in torch_engines)
        assert card["weights_sha256"] == torch_card["weights_sha256"] and card["metrics"] == torch_card["metrics"]
        table = card["metrics"]["musdb_valid_bsseval_v4_sdr"]
        assert card["default_mask"] in ("soft", "binary") and f"stems {card['default_mask']}" in table
        means[name] = table["stems soft"]["mean"]
    assert means["quality"] > means["default"] > means["fast"]  # a slower model has to earn its place


def test_cards_with_retired_options_load_at_their_neutral_value_and_are_refused_otherwise(tmp_path, tiny_torch_checkpoint):
    payload = torch.load(tiny_torch_checkpoint, weights_only=True)
    card = json.loads(payload["card"])
    for retired, loads in (({"side_input": False, "band_offsets": False, "freq_dilations": []}, True),
                           ({"freq_dilations": [1, 2, 3]}, False), ({"side_input": True}, False)):
        card["model_config"] = {**json.loads(payload["card"])["model_config"], **retired}
        path = tmp_path / "old.pt"
        torch.save(payload | {"card": json.dumps(card)}, path)
        if loads:
            assert load_checkpoint(path)[2]["model_config"] == card["model_config"]
        else:
            with pytest.raises(StemsError, match="old.pt: the model needs '(freq_dilations|side_input)', which this "
                                                 "version of stems no longer has"):
                load_checkpoint(path)


def _export_script():
    path = Path(__file__).parents[1] / "scripts" / "export_checkpoint.py"
    spec = importlib.util.spec_from_file_location("export_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipping_a_shipped_checkpoint_again_keeps_its_training_record_flat():
    script = _export_script()
    run = {"best": {"step": 1500, "soft": 3.57}}
    evaluation = {"summary": {"stems soft": {"mean": 3.62}, "stems binary": {"mean": 2.27}}}
    first = script.measured(evaluation, "evaluate once", script.training_record({"metrics": run}))
    evaluation["two_stems"] = {"stem": "vocals", "summary": {"stems soft": {"mean": 6.74}}, "tracks": {}}
    again = script.measured(evaluation, "evaluate again", script.training_record({"metrics": first["metrics"]}))
    assert first["metrics"]["during_training"] == again["metrics"]["during_training"] == run
    assert again["metrics"]["musdb_valid_two_stems_sdr"] == {"stem": "vocals", "summary": {"stems soft": {"mean": 6.74}}}
    assert again["default_mask"] == "soft" and again["metrics"]["command"] == "evaluate again"


def test_shipping_again_keeps_a_recorded_licence_the_config_cannot_resolve(tmp_path):
    """A member trained elsewhere names a folder this machine lacks: the licence its card already
    records stays; a folder nobody states stays "not stated"; a stated licence wins."""
    script = _export_script()
    elsewhere, unknown = str(tmp_path / "gpu" / "eir"), str(tmp_path / "gpu" / "other")
    training = {"config": {"train": {"musdb_root": "", "stem_dirs": [elsewhere, unknown]}},
                "licences": {elsewhere: "CC0-1.0"}}
    card = script.shipped_card({"training": training, "sha256": "derived"})
    assert card["training"]["licences"] == {elsewhere: "CC0-1.0", unknown: "not stated"}
    assert "sha256" not in card
    restated = script.shipped_card({"training": training}, [f"{elsewhere}=CC-BY-4.0", f"{unknown}=CC0-1.0"])
    assert restated["training"]["licences"] == {elsewhere: "CC-BY-4.0", unknown: "CC0-1.0"}


def test_a_registered_model_ships_again_under_another_name(tmp_path, tiny_torch_checkpoint, monkeypatch):
    """`export_checkpoint.py --recard default --name fast` (before another model becomes the
    default): the same weights and card under the new name, the old name's files untouched."""
    model, stft, card = load_checkpoint(tiny_torch_checkpoint)
    register("default", {"torch": save_checkpoint(model, stft, card, tmp_path, "default")}, tmp_path)
    before = json.loads((tmp_path / "registry.json").read_text())
    monkeypatch.setenv("STEMS_CHECKPOINT_DIR", str(tmp_path))
    result = run_script("export_checkpoint.py", "--recard", "default", "--name", "fast")
    assert result.returncode == 0, result.stderr
    after = json.loads((tmp_path / "registry.json").read_text())
    assert after["models"]["default"] == before["models"]["default"]
    assert set(after["models"]["fast"]) == {"torch", "onnx"}
    assert all(name.startswith("fast-") and (tmp_path / name).is_file() for name in after["models"]["fast"].values())
    shipped = load_checkpoint(tmp_path / after["models"]["fast"]["torch"])[2]
    assert shipped["weights_sha256"] == card["weights_sha256"] and shipped["training"] == card["training"]
    missing = run_script("export_checkpoint.py", "--recard", "nosuch", "--name", "other")
    assert missing.returncode != 0 and missing.stderr.strip().endswith("no model named 'nosuch' to ship again")
    assert json.loads((tmp_path / "registry.json").read_text()) == after
