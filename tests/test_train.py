"""A few real training steps on a tiny stem folder the test writes."""

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.checkpoint import load_checkpoint
from stems.cli import app
from stems.errors import StemsError

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


def test_rendered_songs_without_vocals_train_beside_real_ones(tmp_path):
    _stem_folder(tmp_path / "data")
    rendered = tmp_path / "rendered" / "midi-song"
    rendered.mkdir(parents=True)
    for i, stem in enumerate(("drums", "bass", "other")):
        sf.write(rendered / f"{stem}.flac", synth(3.0, seed=40 + i).T * 0.3, RATE)
    (tmp_path / "rendered" / "songs.json").write_text(json.dumps([{"song": "midi-song", "licence": "BSD-3-Clause", "package": "freedoom",
                                                                   "soundfont": {"licence": "MIT", "package": "fluid-soundfont-gm"}}]))
    settings = ["train.musdb_root=''", f"train.stem_dirs=['{tmp_path / 'data'}']", f"train.cache_dir='{tmp_path / 'cache'}'",
                f"train.licences=['{tmp_path / 'data'}=CC0-1.0']",
                f"train.rendered_dirs=['{tmp_path / 'rendered'}']", "train.rendered_share=0.3", "train.fill_missing=true",
                "train.vocals_level_db=[-18, 3]", "model.widths=[4,8,8]", "train.batch_size=2", "train.excerpt_frames=8",
                "train.steps=2"]
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run")] + [a for s in settings for a in ("--set", s)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _, _, card = load_checkpoint(next((tmp_path / "run").glob("last-*.pt")))
    assert card["training"]["data"] == [str(tmp_path / "data"), str(tmp_path / "rendered")]
    assert card["training"]["licences"] == {str(tmp_path / "data"): "CC0-1.0",
                                            str(tmp_path / "rendered"): "BSD-3-Clause (freedoom); MIT (soundfont fluid-soundfont-gm)"}
    # Fine-tuned on the real songs alone, the model still lists the rendered songs it was pre-trained on.
    pretrained = next((tmp_path / "run").glob("last-*.pt"))
    tuned = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "tuned")] + [a for s in settings[:4] + settings[-4:]
                               for a in ("--set", s)] + ["--set", f"train.init='{pretrained}'"], catch_exceptions=False)
    assert tuned.exit_code == 0, tuned.output
    _, _, card = load_checkpoint(next((tmp_path / "tuned").glob("last-*.pt")))
    assert card["training"]["data"] == [str(tmp_path / "data")]
    assert card["training"]["init"]["checkpoint"] == pretrained.name and card["training"]["init"]["step"] == 2
    assert card["training"]["init"]["licences"][str(tmp_path / "rendered")].startswith("BSD-3-Clause (freedoom)")
    shown = CliRunner().invoke(app, ["info", str(next((tmp_path / "tuned").glob("last-*.pt")))])
    text = " ".join(shown.output.replace("│", " ").split())
    assert "BSD-3-Clause (freedoom)" in text and "training steps 2 + 2" in text, shown.output


def test_train_rejects_bad_config(tmp_path):
    result = CliRunner().invoke(app, ["train", "--set", "train.bogus=1", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown config key 'train.bogus'" in result.output
    result = CliRunner().invoke(app, ["train", "--set", "train.speed_range=0.7", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "train.speed_range must be in [0, 0.5), got 0.7" in result.output
    assert not (tmp_path / "s").exists()
    result = CliRunner().invoke(app, ["train", "--set", "train.workers=-1", "--out", str(tmp_path / "w")])
    assert result.exit_code == 2 and "train.workers must be 0 or more, got -1" in result.output
    twice = tmp_path / "twice.yaml"
    twice.write_text("model: fast\nmodel:\n  widths: [8, 16, 32]\n")
    result = CliRunner().invoke(app, ["train", str(twice), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and result.output.strip() == f"error: {twice}: duplicate key 'model' (line 2)"
    assert not (tmp_path / "d").exists()


def _settings(tmp_path, steps, save_every):
    _stem_folder(tmp_path / "data") if not (tmp_path / "data").exists() else None
    values = ["train.musdb_root=''", f"train.stem_dirs=['{tmp_path / 'data'}']", f"train.cache_dir='{tmp_path / 'cache'}'",
              "model.widths=[4,8,8]", "train.batch_size=4", "train.excerpt_frames=16", f"train.steps={steps}",
              f"train.save_every={save_every}", "train.threads=1"]
    return [a for v in values for a in ("--set", v)]


def _weights(run_dir):
    import torch

    payload = torch.load(next(run_dir.glob("last-*.pt")), weights_only=True)
    return payload["state_dict"]


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    """kill -9 mid-run, resume: the result equals an uninterrupted run with the same seed."""
    import signal
    import subprocess
    import sys
    import time

    import torch

    args = _settings(tmp_path, steps=40, save_every=5)
    command = [sys.executable, "-m", "stems.train", *args]
    subprocess.run(command + ["--out", str(tmp_path / "whole")], check=True, capture_output=True, timeout=600)
    victim = subprocess.Popen(command + ["--out", str(tmp_path / "cut")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "cut" / "state.pt"
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert torch.load(state, weights_only=True)["step"] < 40
    subprocess.run([sys.executable, "-m", "stems.train", "--resume", str(tmp_path / "cut"), "--set", "train.threads=1"],
                   check=True, capture_output=True, timeout=600)
    whole, resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert all(torch.allclose(whole[k].float(), resumed[k].float(), atol=1e-6) for k in whole)
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))


@pytest.mark.parametrize("ema_decay", [0.0, 0.5])
def test_two_process_ddp_keeps_ranks_identical(tmp_path, ema_decay):
    """torchrun with 2 CPU processes (gloo): after training, every rank holds the same weights
    (with a moving average too, whose BatchNorm statistics are also per rank)."""
    import os
    import subprocess
    import sys

    import torch

    script = tmp_path / "ddp.py"
    script.write_text(
        "import os, sys, torch\n"
        "from pathlib import Path\n"
        "from stems.train import resolve_run, train\n"
        "config, run_dir = resolve_run(None, sys.argv[2:], Path(sys.argv[1]), None)\n"
        "result = train(config, run_dir)\n"
        "torch.save(result.model.state_dict(), run_dir.parent / f\"rank{os.environ['RANK']}.pt\")\n")
    overrides = [v for v in _settings(tmp_path, steps=4, save_every=2) if v != "--set"] + [f"train.ema_decay={ema_decay}"]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    done = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(tmp_path / "run"), *overrides],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 4  # only rank 0 writes
    assert json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])["step"] == 1


def test_resume_with_another_model_shape_is_a_clear_error(tmp_path):
    from stems.train import resolve_run, train
    from stems.errors import StemsError
    import pytest

    overrides = [v for v in _settings(tmp_path, steps=2, save_every=2) if v != "--set"]
    config, run_dir = resolve_run(None, overrides, tmp_path / "run", None)
    train(config, run_dir)
    wider, _ = resolve_run(None, [*overrides, "model.widths=[8,8,8]"], tmp_path / "run", None)
    with pytest.raises(StemsError, match="state.pt: saved model does not fit this config"):
        train(wider, run_dir, resume=True)


def test_disk_full_while_saving_keeps_the_previous_state(tmp_path, monkeypatch):
    import errno

    import pytest
    import torch

    from stems import train as train_module
    from stems.train import resolve_run, train

    overrides = [v for v in _settings(tmp_path, steps=2, save_every=2) if v != "--set"]
    config, run_dir = resolve_run(None, overrides, tmp_path / "run", None)
    train(config, run_dir)
    before = (run_dir / "state.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        with open(path, "r+b") as handle:  # a write that ran out of space half way
            handle.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train_module.torch, "save", full_disk)
    more, _ = resolve_run(run_dir / "config.yaml", ["train.steps=4"], None, None)
    with pytest.raises(OSError):
        train(more, run_dir, resume=True)
    assert (run_dir / "state.pt").read_bytes() == before
    assert not list(run_dir.glob(".*tmp"))
    assert torch.load(run_dir / "state.pt", weights_only=True)["step"] == 2


def test_validation_reports_sdr_per_stem_and_the_loss():
    from stems.config import Config, TrainConfig
    from stems.data import Song
    from stems.train import validate

    from conftest import make_model

    song = Song("s", np.stack([synth(2.0, seed=i) * 0.3 for i in range(4)]))
    for kind in ("quick", "bsseval"):
        scores = validate(make_model(), Config(train=TrainConfig(validation=kind)), [song])
        assert set(scores) == {"soft", "binary", "loss"} and np.isfinite(scores["loss"])
        assert set(scores["soft"]) == {"drums", "bass", "other", "vocals", "mean", "two_stems"}
        assert set(scores["soft"]["two_stems"]) == {"vocals", "no_vocals", "mean"}
        assert all(np.isfinite(v) for v in scores["soft"]["two_stems"].values())


def test_sdr_loss_is_minus_each_stems_sdr_of_the_masked_mix():
    import torch

    from stems.train import mask_loss

    rng = np.random.default_rng(0)
    specs = rng.normal(size=(2, 4, 2, 5, 3)) + 1j * rng.normal(size=(2, 4, 2, 5, 3))
    specs[1, 2] = 0  # a silent stem
    logits = rng.normal(size=specs.shape)
    loss = mask_loss(torch.tensor(logits), torch.tensor(specs), "sdr").item()

    masks = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mix = specs.sum(axis=1)
    expected = []
    for b in range(2):
        floor = 1e-3 * (np.abs(mix[b]) ** 2).sum() + 1e-8
        for s in range(4):
            error = (np.abs(masks[b, s] * mix[b] - specs[b, s]) ** 2).sum()
            energy = (np.abs(specs[b, s]) ** 2).sum()
            expected.append(10 * np.log10((error + floor) / (energy + floor)))
    assert loss == pytest.approx(np.mean(expected), rel=1e-6)
    assert expected[6] <= 30.0 + 1e-6  # the silent stem's term stays bounded

    # its gradient is the complex form's
    logits = torch.tensor(logits, requires_grad=True)
    mask_loss(logits, torch.tensor(specs), "sdr").backward()
    masks = torch.softmax(logits, dim=1)
    mix = torch.tensor(specs).sum(dim=1, keepdim=True)
    floor = 1e-3 * mix.abs().square().sum(dim=(2, 3, 4)) + 1e-8
    error = (masks * mix - torch.tensor(specs)).abs().square().sum(dim=(2, 3, 4))
    energy = torch.tensor(specs).abs().square().sum(dim=(2, 3, 4))
    complex_form = torch.autograd.grad((10 * torch.log10((error + floor) / (energy + floor))).mean(), logits)[0]
    assert torch.allclose(logits.grad, complex_form, rtol=1e-6, atol=1e-12)


def test_sdr_loss_prefers_the_mask_of_the_dominant_stem():
    import torch

    from stems.train import mask_loss

    specs = torch.zeros(1, 4, 1, 4, 2, dtype=torch.complex64)
    for s in range(4):
        specs[0, s, 0, s] = 1.0  # each stem owns one bin
    owner = torch.full((1, 4, 1, 4, 2), -5.0)
    for s in range(4):
        owner[0, s, 0, s] = 5.0
    uniform = mask_loss(torch.zeros_like(owner), specs, "sdr")  # a quarter of every bin: -1.25 dB
    assert mask_loss(owner, specs, "sdr") < -20 and uniform.item() == pytest.approx(10 * np.log10(12 / 16), abs=0.01)


def test_worker_batches_are_seeded_per_worker_and_reproducible():
    from stems.data import ExcerptSampler, Song
    from stems.train import excerpt_batches

    songs = [Song(str(i), np.stack([synth(1.0, seed=4 * i + s) * 0.3 for s in range(4)])) for i in range(3)]

    def first(workers, seed, count=4):
        batches = excerpt_batches(ExcerptSampler(songs, 4096, seed=0), 3, workers, seed)
        return [next(batches)[0].numpy() for _ in range(count)]

    drawn = first(2, (0, 0, 0))
    assert all(b.shape == (3, 4, 2, 4096) and b.dtype == np.float32 for b in drawn)
    assert not np.array_equal(drawn[0], drawn[1])  # the two workers draw different streams
    assert all(np.array_equal(a, b) for a, b in zip(drawn, first(2, (0, 0, 0))))
    assert not np.array_equal(drawn[0], first(2, (0, 0, 50), count=1)[0])  # a resumed run draws anew
    in_process = ExcerptSampler(songs, 4096, seed=0)
    assert np.array_equal(first(0, (0, 0, 0), count=1)[0], in_process.batch(3))


def test_training_with_excerpt_workers_runs(tmp_path):
    args = _settings(tmp_path, steps=3, save_every=3) + ["--set", "train.workers=2"]
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3] and all(np.isfinite(s["loss"]) for s in steps)


def test_moving_average_follows_its_closed_form():
    import torch

    from stems.config import ModelConfig
    from stems.model import MaskNet
    from stems.train import _update_average

    model = MaskNet(ModelConfig(widths=(4, 8, 8)), 1025)
    average = MaskNet(ModelConfig(widths=(4, 8, 8)), 1025)
    start = {k: v.clone() for k, v in average.state_dict().items()}
    _update_average(average, model, 0.75)
    for name, value in average.state_dict().items():
        current = model.state_dict()[name]
        expected = 0.75 * start[name] + 0.25 * current if value.is_floating_point() else current
        assert torch.allclose(value, expected, atol=1e-6), name


def test_fine_tuning_with_a_moving_average_saves_the_average_and_resumes_it(tmp_path):
    import torch

    first = tmp_path / "first"
    assert CliRunner().invoke(app, ["train", "--out", str(first), *_settings(tmp_path, steps=2, save_every=2)]).exit_code == 0
    start = _weights(first)
    tuned = tmp_path / "tuned"
    args = _settings(tmp_path, steps=3, save_every=3) + ["--set", f"train.init='{next(first.glob('last-*.pt'))}'",
                                                         "--set", "train.ema_decay=0.5", "--set", "train.lr=0.0"]
    result = CliRunner().invoke(app, ["train", "--out", str(tuned), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    state = torch.load(tuned / "state.pt", weights_only=True)
    saved = _weights(tuned)
    # With a zero learning rate only BatchNorm statistics move: the weights are the initial ones.
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    weights = [k for k in start if not k.endswith(statistics)]
    assert len(weights) > 20 and all(torch.equal(saved[k], start[k]) for k in weights)
    assert all(torch.equal(saved[k], state["average"][k]) for k in saved)
    assert any(not torch.equal(saved[k], state["model"][k]) for k in saved if k.endswith("running_mean"))
    more = CliRunner().invoke(app, ["train", "--resume", str(tuned), "--set", "train.steps=4"], catch_exceptions=False)
    assert more.exit_code == 0, more.output


def test_init_from_another_model_is_a_clear_error(tmp_path):
    first = tmp_path / "first"
    assert CliRunner().invoke(app, ["train", "--out", str(first), *_settings(tmp_path, steps=1, save_every=1)]).exit_code == 0
    args = _settings(tmp_path, steps=1, save_every=1) + ["--set", f"train.init='{next(first.glob('last-*.pt'))}'",
                                                         "--set", "model.widths=[8,8,8]"]
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "other"), *args])
    assert result.exit_code != 0
    assert "train.init must be a single network with this run's model and stft settings" in result.output
    assert not (tmp_path / "other").exists()  # failed before writing anything
    bad = CliRunner().invoke(app, ["train", "--set", "train.ema_decay=1.0", "--out", str(tmp_path / "e")])
    assert bad.exit_code == 2 and "train.ema_decay must be in [0, 1), got 1.0" in bad.output


def _sixteen_khz_vocals(root, clips=3):
    """A MIR-1K-like folder: mono vocals recorded at 16 kHz (nothing above 8 kHz), nothing else."""
    for clip in range(clips):
        folder = root / f"singer_1_0{clip}"
        folder.mkdir(parents=True)
        sf.write(folder / "vocals.ogg", synth(2.0, channels=1, seed=70 + clip, rate=16000).T, 16000)


def test_band_limited_vocals_count_for_nothing_above_their_band_in_the_loss(tmp_path):
    """A 16-kHz vocals folder named in train.band_limits: the examples that draw its vocals carry
    its band (times the slowest speed); their stems' bins above it are zero in what the loss is
    given, the mix the network sees is cut there only with band_limited_mix=limited, and the
    full-band examples are left as they are."""
    import torch

    from stems.config import load_config
    from stems.train import band_limited, excerpt_sampler, load_training_songs, mask_loss, stft_tensor

    _stem_folder(tmp_path / "full")
    _sixteen_khz_vocals(tmp_path / "clips")
    config = load_config(None, ["train.musdb_root=''", f"train.stem_dirs=['{tmp_path / 'full'}']",
                                f"train.rendered_dirs=['{tmp_path / 'clips'}']", "train.rendered_share=0.5",
                                "train.fill_missing=true", f"train.cache_dir='{tmp_path / 'cache'}'",
                                f"train.band_limits=['{tmp_path / 'clips'}=8000']", "train.speed_range=0.1"])
    songs, clips, _, _ = load_training_songs(config, [])
    assert {song.band_hz for song in songs} == {np.inf} and {song.band_hz for song in clips} == {8000.0}
    stems, band_hz, accompanied, _ = excerpt_sampler(config, songs, clips, 16384, seed=0).draw(24)
    assert not accompanied.any()
    limited = np.isfinite(band_hz)
    assert limited.any() and not limited.all() and np.allclose(band_hz[limited], 7200.0)

    specs = stft_tensor(stems, config)  # (24, 4, 2, bins, frames)
    scored = band_limited(specs, torch.from_numpy(band_hz), config)
    above = np.arange(config.stft.n_bins) * config.stft.sample_rate / config.stft.n_fft > 7200.0
    assert not scored[limited][..., above, :].any()
    assert torch.equal(scored[limited][..., ~above, :], specs[limited][..., ~above, :])
    assert torch.equal(scored[~limited], specs[~limited])
    assert specs[limited][..., above, :].abs().amax() > 0  # the other stems do sound up there

    # the loss of a limited example is the loss over its band's bins alone
    logits = torch.randn(specs.shape)
    example = int(np.flatnonzero(limited)[0])
    whole = mask_loss(logits[example:example + 1], scored[example:example + 1], "sdr")
    band = mask_loss(logits[example:example + 1, ..., ~above, :], specs[example:example + 1, ..., ~above, :], "sdr")
    assert whole.item() == pytest.approx(band.item(), rel=1e-5)


def test_the_sdr_loss_scores_the_masked_mix_given_against_the_clean_stems():
    """A codec altered the mix: the loss is minus each stem's SDR of the masks times that mix,
    against the stems (computed here with complex numbers, as the definition reads)."""
    import torch

    from stems.train import mask_loss

    rng = np.random.default_rng(5)
    shape = (2, 4, 2, 33, 6)
    specs = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    mix = specs.sum(axis=1) + 0.3 * (rng.standard_normal(shape[:1] + shape[2:]) + 1j * rng.standard_normal(shape[:1] + shape[2:]))
    logits = rng.standard_normal(shape)
    masks = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    error = np.square(np.abs(masks * mix[:, None] - specs)).sum(axis=(2, 3, 4))
    energy = np.square(np.abs(specs)).sum(axis=(2, 3, 4))
    floor = 1e-3 * np.square(np.abs(mix)).sum(axis=(1, 2, 3))[:, None] + 1e-8
    expected = np.mean(10 * np.log10((error + floor) / (energy + floor)))
    loss = mask_loss(torch.tensor(logits), torch.tensor(specs), "sdr", mix_spec=torch.tensor(mix))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    clean = mask_loss(torch.tensor(logits), torch.tensor(specs), "sdr", mix_spec=torch.tensor(specs.sum(axis=1)))
    assert clean.item() == pytest.approx(mask_loss(torch.tensor(logits), torch.tensor(specs), "sdr").item(), rel=1e-9)
    assert loss.item() != pytest.approx(clean.item(), rel=1e-3)


def test_training_with_the_mp3_codec_on_the_mix_runs(tmp_path, monkeypatch):
    from stems import augment

    monkeypatch.setattr(augment, "CODEC_PROBABILITY", 1.0)
    _stem_folder(tmp_path / "full")
    _train_three_steps(tmp_path, ["train.augment=[codec]"])


def test_a_band_limit_for_a_folder_that_is_not_read_is_refused_before_any_output(tmp_path):
    _stem_folder(tmp_path / "full")
    settings = ["train.musdb_root=''", f"train.stem_dirs=['{tmp_path / 'full'}']", f"train.cache_dir='{tmp_path / 'cache'}'",
                f"train.band_limits=['{tmp_path / 'clips'}=8000']", "model.widths=[4,8,8]", "train.steps=1"]
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run")] + [a for s in settings for a in ("--set", s)])
    assert result.exit_code == 2 and "train.band_limits names" in result.output and "clips" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("mix", ["full", "limited"])
def test_training_with_band_limited_vocals_runs(tmp_path, mix):
    _stem_folder(tmp_path / "full")
    _sixteen_khz_vocals(tmp_path / "clips")
    _train_three_steps(tmp_path, [f"train.rendered_dirs=['{tmp_path / 'clips'}']", "train.fill_missing=true",
                                  f"train.band_limits=['{tmp_path / 'clips'}=8000']", f"train.band_limited_mix={mix}"])


def _train_three_steps(tmp_path, settings):
    """`stems train` of three tiny steps on the stem folder tmp_path/full plus `settings`; the
    run's folder, after checking that every step's loss is finite."""
    settings = ["train.musdb_root=''", f"train.stem_dirs=['{tmp_path / 'full'}']", f"train.cache_dir='{tmp_path / 'cache'}'",
                "model.widths=[4,8,8]", "train.batch_size=4", "train.excerpt_frames=8", "train.steps=3", "train.save_every=3",
                *settings]
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run")] + [a for s in settings for a in ("--set", s)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3] and all(np.isfinite(s["loss"]) for s in steps)
    return tmp_path / "run"


def test_an_accompanied_example_scores_vocals_against_the_sum_of_the_other_masks():
    """mask_loss with accompanied examples: each of them is the mean of two terms, vocals and the
    other stems' masks summed against their summed spectrum (the accompaniment); the others keep
    the mean over all stems; every example weighs the same. Checked against numpy."""
    import torch

    from stems.train import mask_loss

    rng = np.random.default_rng(1)
    specs = rng.normal(size=(3, 4, 2, 6, 3)) + 1j * rng.normal(size=(3, 4, 2, 6, 3))
    logits = rng.normal(size=specs.shape)
    accompanied = np.array([False, True, False])

    def minus_sdr(estimate, target, mix):
        floor = 1e-3 * (np.abs(mix) ** 2).sum() + 1e-8
        return 10 * np.log10(((np.abs(estimate - target) ** 2).sum() + floor) / ((np.abs(target) ** 2).sum() + floor))

    masks = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = []
    for b in range(3):
        mix = specs[b].sum(axis=0)
        if accompanied[b]:
            terms = [minus_sdr(masks[b, 3] * mix, specs[b, 3], mix),
                     minus_sdr(masks[b, :3].sum(axis=0) * mix, specs[b, :3].sum(axis=0), mix)]
        else:
            terms = [minus_sdr(masks[b, s] * mix, specs[b, s], mix) for s in range(4)]
        expected.append(np.mean(terms))
    loss = mask_loss(torch.tensor(logits), torch.tensor(specs), "sdr", torch.tensor(accompanied), vocals=3)
    assert loss.item() == pytest.approx(np.mean(expected), rel=1e-6)
    plain = mask_loss(torch.tensor(logits), torch.tensor(specs), "sdr")
    assert mask_loss(torch.tensor(logits), torch.tensor(specs), "sdr", torch.tensor([False] * 3), 3).item() == plain.item()
    with pytest.raises(StemsError, match="needs the sdr loss"):
        mask_loss(torch.tensor(logits), torch.tensor(specs), "magnitude_l1", torch.tensor(accompanied), 3)


def _accompanied_folder(root, clips=3):
    """A MIR-1K-like folder: vocals and their karaoke accompaniment, mono, 16 kHz."""
    for clip in range(clips):
        folder = root / f"singer_2_0{clip}"
        folder.mkdir(parents=True)
        sf.write(folder / "vocals.ogg", synth(2.0, channels=1, seed=80 + clip, rate=16000).T, 16000)
        sf.write(folder / "accompaniment.ogg", synth(2.0, channels=1, seed=90 + clip, rate=16000).T * 0.5, 16000)


def test_accompanied_songs_are_drawn_whole_at_their_share_and_lend_nothing(tmp_path):
    from stems.config import load_config
    from stems.train import excerpt_sampler, load_training_songs

    _stem_folder(tmp_path / "full")
    _accompanied_folder(tmp_path / "karaoke")
    config = load_config(None, ["train.musdb_root=''", f"train.stem_dirs=['{tmp_path / 'full'}']",
                                f"train.accompanied_dirs=['{tmp_path / 'karaoke'}']", "train.accompanied_share=0.3",
                                "train.fill_missing=true", f"train.cache_dir='{tmp_path / 'cache'}'",
                                f"train.band_limits=['{tmp_path / 'karaoke'}=8000']"])
    songs, rendered, accompanied, _ = load_training_songs(config, [])
    assert len(songs) == 2 and not rendered and len(accompanied) == 3
    first = np.asarray(accompanied[0].stems, dtype=np.float32)  # (sources, channels, samples)
    assert np.abs(first[0]).max() > 0 and np.abs(first[3]).max() > 0 and not first[1:3].any()  # drums slot, vocals
    assert {song.band_hz for song in accompanied} == {8000.0}

    stems, band_hz, flagged, _ = excerpt_sampler(config, songs, [], 8192, seed=0, accompanied=accompanied).draw(400)
    assert 0.2 < flagged.mean() < 0.4
    assert np.all(np.isfinite(band_hz) == flagged)  # only the accompanied songs are band-limited here
    assert not stems[flagged][:, 1:3].any()  # one label, in the first non-vocal slot
    # no other example holds an accompanied song's stems: the full songs' drums never vanish
    assert all(np.abs(example[0]).max() > 0 for example in stems[~flagged])


def test_training_with_accompanied_songs_runs_and_lists_them(tmp_path):
    _stem_folder(tmp_path / "full")
    _accompanied_folder(tmp_path / "karaoke")
    run = _train_three_steps(tmp_path, [f"train.accompanied_dirs=['{tmp_path / 'karaoke'}']", "train.accompanied_share=0.5",
                                        f"train.licences=['{tmp_path / 'full'}=CC0-1.0', '{tmp_path / 'karaoke'}=research use']"])
    _, _, card = load_checkpoint(next(run.glob("last-*.pt")))
    assert str(tmp_path / "karaoke") in card["training"]["data"]
    assert card["training"]["licences"][str(tmp_path / "karaoke")] == "research use"
