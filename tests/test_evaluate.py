import numpy as np
import pytest

from stems.config import STFTConfig
from stems.evaluate import evaluate_systems, median_over_tracks, oracle_estimates, score_track

from conftest import synth

NAMES = ("drums", "bass", "other", "vocals")


@pytest.fixture(scope="module")
def references():
    """Four different 2-second stereo sources."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * 44100) / 44100
    sources = [synth(2.0, seed=1)[:, : t.size] * 0.5,
               np.stack([np.sin(2 * np.pi * 60 * t)] * 2) * 0.3,
               0.05 * rng.standard_normal((2, t.size)),
               np.stack([np.sin(2 * np.pi * 880 * t + np.sin(2 * np.pi * 5 * t))] * 2) * 0.2]
    return np.stack(sources).astype(np.float32)


def test_perfect_estimates_score_very_high(references):
    scores = score_track({n: references[i] for i, n in enumerate(NAMES)},
                         {n: references[i] for i, n in enumerate(NAMES)})
    assert all(scores[n]["SDR"] > 60 for n in NAMES)


def test_mixture_baseline_matches_a_hand_computation():
    """Two sources, the second a scaled copy of an orthogonal signal: with the mix as estimate of
    s1, the error is s2, so SDR = 10 log10(|s1|^2 / |s2|^2) (BSSEval's distortion filter cannot
    map s1 onto an orthogonal s2)."""
    t = np.arange(2 * 44100) / 44100
    s1 = np.stack([np.sin(2 * np.pi * 440 * t)] * 2)
    s2 = 0.5 * np.stack([np.sin(2 * np.pi * 3000 * t)] * 2)
    scores = score_track({"a": s1, "b": s2}, {"a": s1 + s2, "b": s1 + s2})
    assert scores["a"]["SDR"] == pytest.approx(10 * np.log10(1 / 0.25), abs=0.3)
    assert scores["b"]["SDR"] == pytest.approx(10 * np.log10(0.25 / 1), abs=0.3)


def test_oracles_beat_the_mixture(references):
    refs = {n: references[i] for i, n in enumerate(NAMES)}
    mix = score_track(refs, oracle_estimates(references, NAMES, "mix", STFTConfig()))
    for kind in ("ibm", "argmax", "irm"):
        oracle = score_track(refs, oracle_estimates(references, NAMES, kind, STFTConfig()))
        assert all(oracle[n]["SDR"] > mix[n]["SDR"] + 3 for n in NAMES), kind


def test_median_of_medians():
    per_track = [{"a": {"SDR": 1.0}, "b": {"SDR": 4.0}},
                 {"a": {"SDR": 3.0}, "b": {"SDR": np.nan}},
                 {"a": {"SDR": 10.0}, "b": {"SDR": 2.0}}]
    table = median_over_tracks(per_track)
    assert table == {"a": 3.0, "b": 3.0, "mean": 3.0}


def test_results_are_cached_and_resumed(tmp_path, references):
    calls = []

    def system(track, refs):
        calls.append(1)
        return {n: refs.sum(axis=0) for n in NAMES}

    tracks = [("t1", references)]
    first = evaluate_systems(tracks, {"mix": system}, NAMES, cache_dir=tmp_path)
    again = evaluate_systems(tracks, {"mix": system}, NAMES, cache_dir=tmp_path)
    assert len(calls) == 1 and first == again


def _stems_dir(root, seconds=2.0):
    import soundfile as sf

    for song in ("one", "two"):
        for i, stem in enumerate(NAMES):
            (root / song).mkdir(parents=True, exist_ok=True)
            sf.write(root / song / f"{stem}.wav", synth(seconds, seed=10 * i + len(song)).T * 0.4, 44100)


def test_evaluate_command_reports_and_estimates(tmp_path, tiny_checkpoint, monkeypatch):
    from typer.testing import CliRunner

    from stems.cli import app

    monkeypatch.chdir(tmp_path)
    _stems_dir(tmp_path / "refs")
    # another system's outputs: the references themselves for one track only
    (tmp_path / "est" / "one").mkdir(parents=True)
    for stem in NAMES:
        (tmp_path / "est" / "one" / f"{stem}.wav").write_bytes((tmp_path / "refs" / "one" / f"{stem}.wav").read_bytes())
    common = ["evaluate", "--stems-dir", "refs", "--checkpoint", str(tiny_checkpoint), "--cache", "cache"]
    missing = CliRunner().invoke(app, common + ["--mask", "", "--oracle", "", "--estimates", "est"])
    assert missing.exit_code == 1 and "estimate missing for track 'two'" in missing.output
    result = CliRunner().invoke(app, common + ["--mask", "soft", "--oracle", "mix", "--json", "r.json",
                                               "--markdown", "r.md", "--chart", "r.png", "--plot", "one"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    summary = report["summary"]
    assert set(summary) == {"stems soft", "mixture"}
    frames = report["tracks"]["mixture"]["one"]["vocals"]["frames"]["SDR"]
    assert len(frames) == 2 and report["tracks"]["mixture"]["one"]["vocals"]["SDR"] == pytest.approx(np.median(frames))
    assert "| mixture |" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").stat().st_size > 1000 and (tmp_path / "one.masks.png").stat().st_size > 1000
    shifted = CliRunner().invoke(app, common + ["--mask", "soft", "--oracle", "", "--shifts", "2", "--json", "s.json"])
    assert shifted.exit_code == 0, shifted.output  # scored anew, not read from the unshifted cache entry
    scores = json.loads((tmp_path / "s.json").read_text())["tracks"]["stems soft"]["one"]["vocals"]["SDR"]
    assert scores != report["tracks"]["stems soft"]["one"]["vocals"]["SDR"]
    alone = CliRunner().invoke(app, common[:-4] + ["--cache", "cache", "--oracle", "ibm"])
    assert alone.exit_code == 0 and "oracle IBM" in alone.output and "stems soft" not in alone.output
    both = CliRunner().invoke(app, ["evaluate", "--stems-dir", "refs", "--musdb", "x"])
    assert both.exit_code == 1 and "exactly one source" in both.output


def test_nothing_to_evaluate_is_a_usage_error():
    from typer.testing import CliRunner

    from stems.cli import app

    result = CliRunner().invoke(app, ["evaluate", "--stems-dir", ".", "--mask", "", "--oracle", ""])
    assert result.exit_code == 2 and "nothing to evaluate" in result.output


def test_stem_spectrogram_plot_writes_a_png(tmp_path):
    from stems.report import stem_spectrogram_plot

    rng = np.random.default_rng(0)
    true, estimated = rng.random((4, 65, 30)), rng.random((4, 65, 30))
    path = tmp_path / "stems.png"
    stem_spectrogram_plot(true.sum(axis=0), true, estimated, ("drums", "bass", "other", "vocals"), 8000, 64, path, "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_two_stem_table_reuses_the_four_stem_separation(tmp_path, tiny_checkpoint, monkeypatch):
    from typer.testing import CliRunner

    from stems.cli import app
    from stems.separator import Separator

    monkeypatch.chdir(tmp_path)
    _stems_dir(tmp_path / "refs")
    calls = []
    separate = Separator.separate
    monkeypatch.setattr(Separator, "separate", lambda self, *a, **k: calls.append(1) or separate(self, *a, **k))
    command = ["evaluate", "--stems-dir", "refs", "--checkpoint", str(tiny_checkpoint), "--mask", "soft", "--oracle", "",
               "--json", "r.json"]
    result = CliRunner().invoke(app, command + ["--cache", "cache"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 2  # two tracks, each separated once for both tables
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    sep = Separator.from_checkpoint(str(tiny_checkpoint))
    import soundfile as sf

    refs = {n: sf.read(tmp_path / "refs" / "one" / f"{n}.wav", dtype="float32", always_2d=True)[0].T for n in NAMES}
    stems = sep.separate(sum(refs.values()), 44100, two_stems="vocals", mask="soft")
    direct = score_track({"vocals": refs["vocals"], "no_vocals": sum(refs[n] for n in NAMES if n != "vocals")}, stems)
    two = report["two_stems"]["tracks"]["stems soft"]["one"]
    assert two["vocals"]["SDR"] == pytest.approx(direct["vocals"]["SDR"], abs=1e-3)
    assert two["no_vocals"]["SDR"] == pytest.approx(direct["no_vocals"]["SDR"], abs=1e-3)
    calls.clear()
    again = CliRunner().invoke(app, command[:-2] + ["--cache", "cache"])  # both tables cached: nothing separated
    assert again.exit_code == 0 and calls == []
