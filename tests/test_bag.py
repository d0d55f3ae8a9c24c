"""A bag of models: its mask is the mean of its members' masks, everywhere the model is used."""

import json

import numpy as np
import pytest
import torch
from conftest import RATE, make_model, run_script, synth, torch_separator
from typer.testing import CliRunner

from stems import spectral
from stems.bag import MaskBag
from stems.checkpoint import load_checkpoint, save_checkpoint
from stems.cli import app
from stems.config import ModelConfig, STFTConfig
from stems.errors import StemsError
from stems.model import MaskNet
from stems.reconstruct import output_groups
from stems.stream import stream_blocks


def mixed_bag(lookahead: int = -1) -> MaskBag:
    """Three members that differ in weights, widths, strides and window (the second reaches 2
    frames further back and ahead, or back only with a look-ahead; the third looks 2 frames ahead
    whatever the bag's look-ahead)."""
    return MaskBag([make_model(seed=1, lookahead_frames=lookahead),
                    make_model(seed=2, widths=(4, 8, 12), lookahead_frames=lookahead, dilations=(1, 3, 2)),
                    make_model(seed=3, lookahead_frames=2, freq_stride=8)])


def test_bag_mask_is_the_mean_of_member_masks():
    bag = mixed_bag()
    assert [m.window_frames for m in bag.members] == [13, 17, 13] and (bag.past, bag.lookahead) == (10, 8)
    mag = torch.from_numpy(np.abs(spectral.stft(synth(1.0), STFTConfig())))
    pad = torch.nn.functional.pad
    with torch.no_grad():
        bag_mask = torch.softmax(bag(pad(mag, (bag.past, bag.lookahead))[None]), dim=1)
        member_masks = [torch.softmax(m(pad(mag, (m.past, m.lookahead))[None]), dim=1) for m in bag.members]
    expected = sum(member_masks) / 3
    assert torch.allclose(bag_mask, expected, atol=1e-6)
    assert not torch.allclose(member_masks[0], expected, atol=1e-2)  # the members do disagree


def test_bag_of_one_separates_as_its_member():
    audio = synth(3.0, seed=2)
    member = make_model(seed=5)
    alone = torch_separator(member).separate(audio, RATE, mask="binary")
    bagged = torch_separator(MaskBag([member])).separate(audio, RATE, mask="binary")
    for stem in alone:
        assert np.abs(alone[stem] - bagged[stem]).max() < 1e-5


def test_bag_checkpoint_round_trip(tmp_path):
    bag = mixed_bag()
    path = save_checkpoint(bag, STFTConfig(), {"training": {"data": ["random weights (tests)"]}}, tmp_path, "bag")
    loaded, _, card = load_checkpoint(path)
    assert card["model"] == "MaskBag" and len(card["model_configs"]) == 3
    assert card["model_configs"][2]["freq_stride"] == 8
    audio = synth(2.0, seed=3)
    before = torch_separator(bag).separate(audio, RATE, mask="soft")
    after = torch_separator(loaded).separate(audio, RATE, mask="soft")
    for stem in before:
        np.testing.assert_array_equal(before[stem], after[stem])


def test_bag_chunked_equals_one_pass_and_adds_up_to_the_mix():
    audio = synth(9.1, seed=1)
    bag = mixed_bag()
    one_pass = torch_separator(bag, chunk_frames=10_000).separate(audio, RATE, mask="soft")
    assert np.abs(sum(one_pass.values()) - audio).max() < 1e-4
    chunked = torch_separator(bag, chunk_frames=71).separate(audio, RATE, mask="soft")
    for stem in one_pass:
        assert np.abs(chunked[stem] - one_pass[stem]).max() < 1e-5


@pytest.mark.parametrize("lookahead,block", [(1, 700), (-1, 1500)])
def test_bag_streaming_equals_offline(lookahead, block):
    separator = torch_separator(mixed_bag(lookahead))
    audio = synth(2.1, seed=4)
    offline = separator.separate(audio, RATE, mask="soft")
    groups = output_groups(separator.sources)
    blocks = (audio[:, i: i + block] for i in range(0, audio.shape[1], block))
    outputs = list(stream_blocks(separator, blocks, 2, groups, "soft"))
    for name in groups:
        streamed = np.concatenate([o[name] for o in outputs], axis=1)
        assert np.abs(streamed - offline[name]).max() < 1e-4


def test_members_of_other_stems_or_bins_are_refused(tmp_path):
    with pytest.raises(ValueError, match="bins"):
        MaskBag([make_model(), MaskNet(ModelConfig(widths=(4, 8, 8)), STFTConfig(n_fft=1024, hop_length=512).n_bins)])
    payload = torch.load(save_checkpoint(mixed_bag(), STFTConfig(), {}, tmp_path, "bag"), weights_only=True)
    card = json.loads(payload["card"])
    card["model_configs"][1]["sources"] = ["vocals", "accompaniment"]  # a card edited to mismatch its members
    payload["card"] = json.dumps(card)
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(StemsError, match="broken.pt: checkpoint card does not describe a model"):
        load_checkpoint(broken)


def test_make_bag_script_and_info(tmp_path):
    members = [save_checkpoint(make_model(seed=s), STFTConfig(), {"training": {"data": [f"set {s}"], "step": 10 * s}},
                               tmp_path, f"m{s}") for s in (1, 2)]
    made = run_script("make_bag.py", *members, "--out", tmp_path / "bag")
    assert made.returncode == 0, made.stderr
    bag_file = next((tmp_path / "bag").glob("bag-*.pt"))
    shown = CliRunner().invoke(app, ["info", str(bag_file)], terminal_width=200)
    assert shown.exit_code == 0
    assert "a bag of 2 MaskNets" in shown.output and "set 1; set 2" in shown.output and "10 + 20" in shown.output
    other_stft = save_checkpoint(make_model(), STFTConfig(hop_length=512), {}, tmp_path, "hop512")
    refused = run_script("make_bag.py", members[0], other_stft, "--out", tmp_path / "x")
    assert refused.returncode == 2 and "different STFT settings" in refused.stderr
    assert not (tmp_path / "x").exists()
