"""The stem list is a model and data setting: a five-stem model (a piano added) trains on a stem
folder, separates through torch and ONNX into five stems that add up to the mix, and is refused
by the four-stem NI format, with no code change."""

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.audio import load
from stems.checkpoint import load_checkpoint
from stems.cli import app
from stems.config import load_config
from stems.data import ExcerptSampler, musdb_songs, stem_folder_sources, stem_folder_songs
from stems.errors import StemsError
from stems.export import export_onnx
from stems.train import train

from conftest import RATE, synth

FIVE = ("drums", "bass", "other", "vocals", "piano")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _five_stem_folder(root):
    for number, song in enumerate(("one", "two", "three")):
        folder = root / song
        folder.mkdir(parents=True)
        for i, stem in enumerate(FIVE):
            sf.write(folder / f"{stem}.wav", synth(3.0, seed=10 * number + i).T * 0.3, RATE)
    return root


@pytest.fixture(scope="module")
def five_stem_run(tmp_path_factory):
    """A few training steps of a tiny five-stem model on a stem folder; no MUSDB18, so no
    validation: the run's last weights are its checkpoint."""
    root = tmp_path_factory.mktemp("five")
    data = _five_stem_folder(root / "data")
    config = load_config(None, [f"model.sources={list(FIVE)}", "model.widths=[4,8,8]", "model.freq_stride=4",
                                "model.dilations=[1,1,2]", "train.musdb_root=''", f"train.stem_dirs=['{data}']",
                                f"train.cache_dir='{root / 'cache'}'", "train.batch_size=2", "train.excerpt_frames=8",
                                "train.steps=3", "train.threads=1"])
    result = train(config, root / "run")
    return root, result.checkpoint


def test_five_stem_model_trains_and_separates_through_torch_and_onnx(five_stem_run, tmp_path):
    root, checkpoint = five_stem_run
    assert checkpoint.name.startswith("last-")
    model, stft, card = load_checkpoint(checkpoint)
    assert model.sources == FIVE and card["training"]["config"]["model"]["sources"] == list(FIVE)
    onnx = export_onnx(model, stft, card, tmp_path / "onnx", "five")
    mix = sum(load(root / "data" / "two" / f"{stem}.wav", RATE) for stem in FIVE)
    song = tmp_path / "song.wav"
    sf.write(song, mix.T, RATE, subtype="FLOAT")
    for runtime, model_file in (("torch", checkpoint), ("onnx", onnx)):
        out = tmp_path / runtime
        result = run("separate", song, "-o", out, "--checkpoint", model_file, "--runtime", runtime, "--float")
        assert result.exit_code == 0, result.output
        files = sorted(p.name for p in (out / "song").iterdir())
        assert files == sorted(f"{stem}.wav" for stem in FIVE)
        total = sum(load(out / "song" / name, RATE) for name in files)
        assert total.shape == mix.shape and np.abs(total - mix).max() < 1e-4


def test_stem_mp4_refuses_a_five_stem_model(five_stem_run, tmp_path):
    root, checkpoint = five_stem_run
    song = root / "data" / "one" / "drums.wav"
    result = run("separate", song, "-o", tmp_path / "out", "--checkpoint", checkpoint, "--runtime", "torch",
                 "--format", "stem.mp4")
    assert result.exit_code == 1
    assert result.output.strip() == ("error: --format stem.mp4 needs the four stems drums, bass, other, vocals; "
                                     "this model has drums, bass, other, vocals, piano")
    assert not (tmp_path / "out").exists()


def test_export_stems_refuses_a_folder_with_a_fifth_stem(five_stem_run, tmp_path):
    root, _ = five_stem_run
    result = run("export-stems", root / "data" / "one", "-o", tmp_path / "one.stem.mp4")
    assert result.exit_code == 1 and "this folder also has piano.wav, which packing would drop" in result.output
    assert not (tmp_path / "one.stem.mp4").exists()


def test_loaders_read_the_configured_sources(tmp_path):
    data = _five_stem_folder(tmp_path / "data")
    (data / "one" / "mixture.wav").write_bytes((data / "one" / "drums.wav").read_bytes())  # not a stem
    assert stem_folder_sources(data) == FIVE  # the default order, then the rest
    songs = stem_folder_songs(data, tmp_path / "cache", sources=("piano", "vocals"))
    assert [s.stems.shape[0] for s in songs] == [2, 2, 2]
    assert np.allclose(songs[0].stems[0], load(data / "one" / "piano.wav", RATE), atol=1e-3)  # float16 cache
    four = stem_folder_songs(data, tmp_path / "cache")  # the default list: another cache entry
    assert four[0].stems.shape[0] == 4
    assert ExcerptSampler(songs, 4096, seed=0).batch(2).shape == (2, 2, 2, 4096)
    with pytest.raises(StemsError, match="different numbers of sources"):
        ExcerptSampler(songs + four, 4096, seed=0)
    with pytest.raises(StemsError, match=r"^nowhere: MUSDB18 has no piano stem \(it has drums, bass, other, vocals\)"):
        musdb_songs("nowhere", "train", tmp_path / "cache", sources=FIVE)


def test_dataset_build_derives_from_the_configured_sources(tmp_path):
    song = tmp_path / "in"
    song.mkdir()
    for seed, stem in enumerate(FIVE):  # noise: stems that do not correlate, so their gains fit exactly
        sf.write(song / f"{stem}.wav", 0.05 * np.random.default_rng(seed).standard_normal((2 * RATE, 2)), RATE, subtype="FLOAT")
    mix = sum(load(song / f"{stem}.wav", RATE) for stem in FIVE)
    sf.write(tmp_path / "mix.wav", mix.T, RATE, subtype="FLOAT")
    result = run("dataset", "build", "--mix", tmp_path / "mix.wav", "--drums", song / "drums.wav", "--bass", song / "bass.wav",
                 "--vocals", song / "vocals.wav", "--stem", f"piano={song / 'piano.wav'}", "-o", tmp_path / "built",
                 "--set", f"model.sources={list(FIVE)}")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "built").iterdir()) == sorted(f"{s}.wav" for s in (*FIVE, "mixture"))
    other, derived = load(song / "other.wav", RATE), load(tmp_path / "built" / "other.wav", RATE)
    assert 10 * np.log10((other ** 2).sum() / ((derived - other) ** 2).sum()) > 25  # other = mix - the rest
    unknown = run("dataset", "build", "--mix", tmp_path / "mix.wav", "--stem", f"piano={song / 'piano.wav'}",
                  "-o", tmp_path / "four")  # the default sources have no piano
    assert unknown.exit_code == 1 and "unknown stem name piano (known: drums, bass, other, vocals, instrumental)" in unknown.output


def test_without_other_only_one_missing_stem_is_derived(tmp_path):
    from stems.pairs import build_pair

    sources = ("vocals", "piano", "drums")
    with pytest.raises(StemsError, match="cannot derive piano and drums together"):
        build_pair(tmp_path / "mix.wav", {"vocals": tmp_path / "v.wav"}, tmp_path / "out", sources=sources)
    with pytest.raises(StemsError, match="instrumental is written as other"):
        build_pair(tmp_path / "mix.wav", {"instrumental": tmp_path / "i.wav"}, tmp_path / "out", sources=sources)


def test_evaluate_takes_the_stems_a_folder_holds(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    song = tmp_path / "refs" / "one"
    song.mkdir(parents=True)
    for seed, stem in enumerate(("piano", "vocals", "drums")):
        sf.write(song / f"{stem}.wav", synth(1.0, seed=seed).T * 0.3, RATE)
    result = run("evaluate", "--stems-dir", tmp_path / "refs", "--mask", "", "--oracle", "mix", "--two-stems", "piano",
                 "--cache", tmp_path / "cache", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report["summary"]["mixture"]) == ["drums", "vocals", "piano", "mean"]  # the default order, then the rest
    assert report["two_stems"]["stem"] == "piano"
