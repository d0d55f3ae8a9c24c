"""The pair builder on synthetic songs: known offsets and gains come back, stems that are not in the
mix are refused without writing anything, missing stems are derived, and a CSV batch survives a bad row."""

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from stems.pairs import build_from_csv, build_pair
from stems.errors import StemsError

from conftest import RATE

SECONDS = 3.0
EDGE = 4410  # silent samples at both ends of every source, so shifting by a few hundred loses nothing


def source(seed: int) -> np.ndarray:
    """Coloured noise plus three tones, different for every seed: (2, samples) float32.

    The noise gives the cross-correlation one sharp peak; the tones make it music-like."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * RATE)
    t = np.arange(n) / RATE
    noise = signal.lfilter([1.0], [1.0, -rng.uniform(0.3, 0.9)], rng.standard_normal(n))
    tones = sum(np.sin(2 * np.pi * rng.uniform(80, 2000) * t + rng.uniform(0, 6)) for _ in range(3))
    mono = 0.05 * noise / noise.std() + 0.03 * tones
    out = np.stack([mono, 0.7 * mono + 0.01 * rng.standard_normal(n)])
    out[:, :EDGE] = 0
    out[:, -EDGE:] = 0
    return out.astype(np.float32)


def write(path, audio: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, RATE, subtype="FLOAT" if path.suffix == ".wav" else "PCM_16")
    return path


def shifted(audio: np.ndarray, offset: int) -> np.ndarray:
    """The file of a stem that is `offset` samples late (zeros first) or early (start cut off)."""
    if offset >= 0:
        return np.concatenate([np.zeros((audio.shape[0], offset), np.float32), audio], axis=1)
    return audio[:, -offset:]


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = ((reference - estimate).astype(np.float64) ** 2).sum()
    return 10 * np.log10((reference.astype(np.float64) ** 2).sum() / max(error, 1e-30))


def read(path) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0].T


@pytest.fixture
def song():
    stems = {name: source(seed) for seed, name in enumerate(("drums", "bass", "other", "vocals"), start=1)}
    stems["vocals"] = np.repeat(stems["vocals"][:1], 2, axis=0)  # its file is mono: the builder makes it stereo
    return stems, sum(stems.values())


def test_offsets_and_gains_come_back_and_the_stems_add_up(tmp_path, song):
    stems, mix = song
    files = {
        "drums": write(tmp_path / "in" / "drums.wav", 0.5 * shifted(stems["drums"], 1234)),  # needs gain 2
        "bass": write(tmp_path / "in" / "bass.wav", 2.0 * shifted(stems["bass"], -567)),  # needs gain 0.5
        "other": write(tmp_path / "in" / "other.wav", stems["other"]),
        "vocals": write(tmp_path / "in" / "vocals.wav", stems["vocals"][:1]),
    }
    out = tmp_path / "out" / "song"
    report = build_pair(write(tmp_path / "in" / "mix.wav", mix), files, out)

    assert report.offsets == {"drums": 1234, "bass": -567, "other": 0, "vocals": 0}
    for name, gain in {"drums": 2.0, "bass": 0.5, "other": 1.0, "vocals": 1.0}.items():
        assert report.gains[name] == pytest.approx(gain, rel=0.01)
    assert report.derived == []
    assert report.residual_snr_db > 30
    assert sorted(p.name for p in out.iterdir()) == ["bass.wav", "drums.wav", "mixture.wav", "other.wav", "vocals.wav"]
    written = {name: read(out / f"{name}.wav") for name in stems}
    assert snr_db(read(out / "mixture.wav"), sum(written.values())) > 30
    for name in stems:
        assert snr_db(stems[name], written[name]) > 30


def test_a_stem_from_another_song_is_refused_and_nothing_is_written(tmp_path, song):
    stems, mix = song
    instrumental = stems["drums"] + stems["bass"] + stems["other"]
    files = {"instrumental": write(tmp_path / "in" / "instrumental.wav", instrumental),
             "vocals": write(tmp_path / "in" / "vocals.wav", source(99))}
    out = tmp_path / "out" / "song"
    with pytest.raises(StemsError, match="residual SNR") as error:
        build_pair(write(tmp_path / "in" / "mix.wav", mix), files, out)
    assert "mix.wav" in str(error.value)
    assert not out.exists() or not any(out.iterdir())


def test_the_missing_stem_is_derived(tmp_path, song):
    stems, mix = song
    files = {name: write(tmp_path / "in" / f"{name}.wav", shifted(stems[name], 300)) for name in ("drums", "bass", "other")}
    out = tmp_path / "out"
    report = build_pair(write(tmp_path / "in" / "mix.wav", mix), files, out)
    assert report.derived == ["vocals"]
    assert set(report.offsets) == {"drums", "bass", "other"} and set(report.offsets.values()) == {300}
    assert snr_db(stems["vocals"], read(out / "vocals.wav")) > 30


def test_vocals_alone_give_other_but_only_when_they_are_in_the_mix(tmp_path, song):
    stems, mix = song
    mix_file = write(tmp_path / "in" / "mix.wav", mix)
    report = build_pair(mix_file, {"vocals": write(tmp_path / "in" / "vocals.wav", stems["vocals"])}, tmp_path / "good")
    assert report.derived == ["other"]
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == ["mixture.wav", "other.wav", "vocals.wav"]
    assert snr_db(stems["drums"] + stems["bass"] + stems["other"], read(tmp_path / "good" / "other.wav")) > 30

    wrong = {"vocals": write(tmp_path / "in" / "live.wav", source(99))}
    with pytest.raises(StemsError, match="not found"):
        build_pair(mix_file, wrong, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_stem_left_from_an_earlier_build_is_refused(tmp_path, song):
    stems, mix = song
    out = tmp_path / "out"
    write(out / "drums.flac", stems["drums"])
    with pytest.raises(StemsError, match="drums.flac"):
        build_pair(write(tmp_path / "mix.wav", mix), {"vocals": write(tmp_path / "vocals.wav", stems["vocals"])}, out)


def test_csv_batch_records_a_bad_row_and_goes_on(tmp_path, song):
    stems, mix = song
    folder = tmp_path / "pairs"
    write(folder / "a" / "mix.wav", mix)
    write(folder / "a" / "vocals.wav", stems["vocals"])
    write(folder / "a" / "instrumental.wav", stems["drums"] + stems["bass"] + stems["other"])
    (folder / "list.csv").write_text(
        "song,mix,drums,bass,other,vocals,instrumental\n"
        "bad,a/mix.wav,,,,a/missing.wav,a/instrumental.wav\n"
        "good,a/mix.wav,,,,a/vocals.wav,a/instrumental.wav\n")
    reports, errors = build_from_csv(folder / "list.csv", tmp_path / "out")
    assert [r.out_dir.name for r in reports] == ["good"]
    assert reports[0].derived == [] and reports[0].residual_snr_db > 30
    assert len(errors) == 1 and errors[0][0] == "bad" and "missing.wav" in errors[0][1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good"]


def test_dataset_build_command(tmp_path, song):
    from typer.testing import CliRunner

    from stems.cli import app

    stems, mix = song
    mix_file = write(tmp_path / "in" / "mix.wav", mix)
    vocals = write(tmp_path / "in" / "acapella.wav", shifted(stems["vocals"], 300))
    out = tmp_path / "data" / "song"
    result = CliRunner().invoke(app, ["dataset", "build", "--mix", str(mix_file), "--vocals", str(vocals), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "vocals +300" in result.output and "other" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["mixture.wav", "other.wav", "vocals.wav"]
    wrong = write(tmp_path / "in" / "live.wav", source(77))
    rejected = CliRunner().invoke(app, ["dataset", "build", "--mix", str(mix_file), "--vocals", str(wrong),
                                        "-o", str(tmp_path / "data" / "bad")])
    assert rejected.exit_code == 1 and "live.wav" in rejected.output
    assert not (tmp_path / "data" / "bad").exists()
