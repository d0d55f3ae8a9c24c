import json

import numpy as np
import pytest

from stems.config import STFTConfig
from stems.evaluate import evaluate_systems, mean_over_tracks, median_over_tracks, oracle_estimates, score_track, usdr

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


def sdx23_sdr(reference, estimate):
    """SDX23's GlobalSDR, written out per channel: (Σ_left s² + Σ_right s² + δ) / (the same of s − ŝ + δ)."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    signal = sum(float(np.dot(channel, channel)) for channel in reference)
    error = sum(float(np.dot(r - e, r - e)) for r, e in zip(reference, estimate))
    return 10 * np.log10((signal + 1e-7) / (error + 1e-7))


def test_usdr_is_sdx23s_sdr_over_the_whole_track(references):
    rng = np.random.default_rng(1)
    estimates = references + rng.standard_normal(references.shape).astype(np.float32) * np.array([0.01, 0.1, 0.3, 0.02],
                                                                                             np.float32)[:, None, None]
    estimates[2, 1] = 0  # one channel lost: the channels' errors differ
    scores = score_track({n: references[i] for i, n in enumerate(NAMES)}, {n: estimates[i] for i, n in enumerate(NAMES)})
    for i, name in enumerate(NAMES):
        assert scores[name]["uSDR"] == pytest.approx(sdx23_sdr(references[i], estimates[i]), abs=1e-9)
    one_channel = [sdx23_sdr(references[2][[c]], estimates[2][[c]]) for c in (0, 1)]
    assert abs(scores["other"]["uSDR"] - np.mean(one_channel)) > 1  # pooled over channels, not averaged
    silent = np.zeros((2, 100), np.float32)
    assert usdr(silent, silent) == 0.0  # δ: a silent stem left silent is 0 dB, not NaN
    assert usdr(references[0], references[0]) == pytest.approx(10 * np.log10((np.sum(references[0].astype(float) ** 2)
                                                                             + 1e-7) / 1e-7))
    assert usdr(references[0], 0.5 * references[0]) == pytest.approx(10 * np.log10(4), abs=1e-6)


def test_usdr_is_averaged_as_sdx23_ranks():
    """Mean over tracks per stem; its mean over stems is SDX23's score, the mean over songs of each
    song's mean over stems."""
    per_track = [{"a": {"uSDR": 1.0}, "b": {"uSDR": 4.0}},
                 {"a": {"uSDR": 3.0}, "b": {"uSDR": -2.0}},
                 {"a": {"uSDR": 11.0}, "b": {"uSDR": 2.0}}]
    table = mean_over_tracks(per_track)
    assert table == {"a": 5.0, "b": pytest.approx(4 / 3), "mean": pytest.approx(np.mean([2.5, 0.5, 6.5]))}


def test_results_are_cached_and_resumed(tmp_path, references):
    calls = []

    def system(track, refs):
        calls.append(1)
        return {n: refs.sum(axis=0) for n in NAMES}

    tracks = [("t1", references)]
    first = evaluate_systems(tracks, {"mix": system}, NAMES, cache_dir=tmp_path)
    again = evaluate_systems(tracks, {"mix": system}, NAMES, cache_dir=tmp_path)
    assert len(calls) == 1 and first == again
    (cached,) = tmp_path.glob("*.json")  # as written before uSDR: scored again, not shown without it
    old = json.loads(cached.read_text())
    for scores in old.values():
        del scores["uSDR"]
    cached.write_text(json.dumps(old))
    third = evaluate_systems(tracks, {"mix": system}, NAMES, cache_dir=tmp_path)
    assert len(calls) == 2 and third == first and "uSDR" in json.loads(cached.read_text())["vocals"]


def test_cache_is_per_references_not_per_track_name(tmp_path, references):
    """A song of the same name with other references (the song remixed in another folder) is
    scored anew, not read from the first one's cache entry."""
    calls = []

    def system(track, refs):
        calls.append(1)
        return {n: refs.sum(axis=0) / len(NAMES) for n in NAMES}

    first = evaluate_systems([("song", references)], {"mix": system}, NAMES, cache_dir=tmp_path)
    remixed = references.copy()
    remixed[NAMES.index("vocals")] *= 0.1
    second = evaluate_systems([("song", remixed)], {"mix": system}, NAMES, cache_dir=tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 2
    assert second["mix"]["song"]["vocals"]["uSDR"] != pytest.approx(first["mix"]["song"]["vocals"]["uSDR"])
    again = evaluate_systems([("song", remixed)], {"mix": system}, NAMES, cache_dir=tmp_path)
    assert len(calls) == 2 and again == second


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
    (tmp_path / "est" / "two").mkdir()
    for stem in NAMES:  # the other track's estimates: written, scored, then written again
        (tmp_path / "est" / "two" / f"{stem}.wav").write_bytes((tmp_path / "refs" / "two" / f"{stem}.wav").read_bytes())
    exact = CliRunner().invoke(app, common + ["--mask", "", "--oracle", "", "--estimates", "est", "--json", "e.json"])
    assert exact.exit_code == 0, exact.output
    rewritten = tmp_path / "est" / "two" / "vocals.wav"
    rewritten.write_bytes((tmp_path / "refs" / "two" / "drums.wav").read_bytes())
    wrong = CliRunner().invoke(app, common + ["--mask", "", "--oracle", "", "--estimates", "est", "--json", "w.json"])
    assert wrong.exit_code == 0, wrong.output
    scores = [json.loads((tmp_path / name).read_text())["tracks"]["estimates est"]["two"]["vocals"]["uSDR"]
              for name in ("e.json", "w.json")]
    assert scores[0] > 30 and scores[1] < 10  # the new outputs were scored, not the cached ones
    result = CliRunner().invoke(app, common + ["--mask", "soft", "--oracle", "mix", "--json", "r.json",
                                               "--markdown", "r.md", "--chart", "r.png", "--plot", "one"])
    assert result.exit_code == 0, result.output
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


def test_evaluate_reports_usdr_for_estimates_and_the_two_stem_table(tmp_path, monkeypatch):
    """Another system's estimates (half of each stem, plus a little of the next one) scored by the
    CLI: every track's uSDR as computed by hand, the four-stem and the two-stem tables."""
    import soundfile as sf
    from typer.testing import CliRunner

    from stems.cli import app

    monkeypatch.chdir(tmp_path)
    _stems_dir(tmp_path / "refs", seconds=1.0)
    refs = {song: {n: sf.read(tmp_path / "refs" / song / f"{n}.wav", dtype="float32", always_2d=True)[0].T for n in NAMES}
            for song in ("one", "two")}
    estimates = {song: {n: 0.5 * stems[n] + 0.2 * stems[NAMES[(i + 1) % 4]] for i, n in enumerate(NAMES)}
                 for song, stems in refs.items()}
    for song, stems in estimates.items():
        (tmp_path / "est" / song).mkdir(parents=True)
        for name, audio in stems.items():
            sf.write(tmp_path / "est" / song / f"{name}.wav", audio.T, 44100, subtype="FLOAT")
    result = CliRunner().invoke(app, ["evaluate", "--stems-dir", "refs", "--estimates", "est", "--mask", "", "--oracle", "",
                                      "--cache", "cache", "--json", "r.json", "--markdown", "r.md"])
    assert result.exit_code == 0, result.output
    assert result.output.count("uSDR (dB)") == 2  # the four-stem and the two-stem tables
    report = json.loads((tmp_path / "r.json").read_text())
    by_hand = {song: {n: sdx23_sdr(refs[song][n], estimates[song][n]) for n in NAMES} for song in refs}
    for song in refs:
        for name in NAMES:
            assert report["tracks"]["estimates est"][song][name]["uSDR"] == pytest.approx(by_hand[song][name], abs=1e-4)
    summary = report["summary_usdr"]["estimates est"]
    for name in NAMES:
        assert summary[name] == pytest.approx(np.mean([by_hand[song][name] for song in refs]), abs=1e-4)
    score = np.mean([np.mean(list(per_stem.values())) for per_stem in by_hand.values()])  # SDX23's: songs' means, averaged
    assert summary["mean"] == pytest.approx(score, abs=1e-4)
    assert set(report["summary"]) == set(report["summary_usdr"])  # BSSEval's SDR stays beside it

    def rest(stems):
        return sum(stems[n] for n in NAMES if n != "vocals")

    pair = {song: {"vocals": sdx23_sdr(refs[song]["vocals"], estimates[song]["vocals"]),
                   "no_vocals": sdx23_sdr(rest(refs[song]), rest(estimates[song]))} for song in refs}
    for name in ("vocals", "no_vocals"):
        assert report["two_stems"]["summary_usdr"]["estimates est"][name] == pytest.approx(
            np.mean([pair[song][name] for song in refs]), abs=1e-4)
    markdown = (tmp_path / "r.md").read_text()
    assert markdown.count("**uSDR (dB), SDX23's SDR of the whole track, mean over 2 tracks of refs") == 2
    assert markdown.count("**SDR (dB), BSSEval v4") == 2
    assert f"| estimates est | {summary['drums']:.2f} |" in markdown
