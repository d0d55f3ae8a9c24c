"""NI Stem files: the MP4 box module, `stems separate --format stem.mp4` and `stems export-stems`,
checked by reading the files back with ffprobe, stempeg and musdb."""

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems import stemmp4
from stems.audio import load
from stems.cli import app
from stems.errors import StemsError
from stems.mp4box import parse_boxes, top_level, udta_box, write_with_udta_box
from stems.stemmp4 import NI_METADATA, NI_STEMS

from conftest import RATE, synth

stempeg = pytest.importorskip("stempeg")
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def streams(path) -> list[dict]:
    done = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def read(path) -> np.ndarray:
    """Every audio stream of `path`: (streams, channels, samples) float32."""
    audio, rate = stempeg.read_stems(str(path), always_3d=True, dtype=np.float32)
    assert rate == RATE
    return audio.transpose(0, 2, 1)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(reference.shape[-1], estimate.shape[-1])
    error = reference[..., :n] - estimate[..., :n]
    return float(10 * np.log10((reference[..., :n] ** 2).sum() / (error ** 2).sum()))


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *map(str, args)], check=True)


def cover_png(tmp_path):
    path = tmp_path / "cover.png"
    ffmpeg("-f", "lavfi", "-i", "color=red:s=32x32:d=1", "-frames:v", "1", path)
    return path


# the box module


@pytest.mark.parametrize("moov_first,tags", [(True, False), (False, True)])
def test_stem_box_insert_and_replace_keep_the_audio(tmp_path, moov_first, tags):
    wav = tmp_path / "in.wav"
    sf.write(wav, synth(1.0).T, RATE)
    plain = tmp_path / "plain.mp4"
    ffmpeg("-i", wav, "-i", wav, "-map", "0", "-map", "1", "-c:a", "aac",
           *(["-metadata", "title=T"] if tags else ["-fflags", "+bitexact", "-f", "3gp"]),  # 3gp: no udta
           *(["-movflags", "+faststart"] if moov_first else []), plain)
    with open(plain, "rb") as handle:
        kinds = [kind for kind, _, _ in top_level(handle)]
    assert (kinds.index(b"moov") < kinds.index(b"mdat")) == moov_first  # moov first: chunk offsets move
    moov = next(box for box in parse_boxes(plain.read_bytes()) if box.kind == b"moov")
    assert (moov.child(b"udta") is not None) == tags  # without tags, `udta` is created

    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    write_with_udta_box(plain, first, b"stem", b'{"a": 1}')
    write_with_udta_box(first, second, b"stem", b'{"b": "' + b"x" * 5000 + b'"}')
    assert udta_box(first, b"stem") == b'{"a": 1}'
    assert udta_box(second, b"stem").startswith(b'{"b": "xxx')
    moov = next(box for box in parse_boxes(second.read_bytes()) if box.kind == b"moov")
    assert [box.kind for box in moov.child(b"udta").children].count(b"stem") == 1
    assert udta_box(plain, b"stem") is None
    before = read(plain)
    for path in (first, second):
        np.testing.assert_array_equal(read(path), before)
    if tags:
        assert streams(second)["format"]["tags"]["title"] == "T"


def test_replacing_the_box_of_an_ni_file(tmp_path, example_stems):
    _, path = example_stems  # made by NI's tool chain (MP4Box): moov first, a cover, a stem box
    out = tmp_path / "new.stem.mp4"
    write_with_udta_box(path, out, b"stem", json.dumps(NI_METADATA).encode())
    assert json.loads(udta_box(out, b"stem")) == NI_METADATA
    old_udta, new_udta = (next(b for b in parse_boxes(p.read_bytes()) if b.kind == b"moov").child(b"udta")
                          for p in (path, out))
    assert new_udta.child(b"meta").payload == old_udta.child(b"meta").payload
    np.testing.assert_array_equal(read(out), read(path))
    assert len(streams(out)["streams"]) == 6


def test_box_module_refuses_what_is_not_mp4(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, synth(0.1).T, RATE)
    with pytest.raises(ValueError, match="bad MP4 box"):
        write_with_udta_box(wav, tmp_path / "out.mp4", b"stem", b"{}")


def test_ni_metadata_is_stempegs_default():
    with open(stempeg.default_metadata()) as handle:
        default = json.load(handle)
    assert NI_METADATA["version"] == default["version"] == 1
    assert NI_METADATA["mastering_dsp"] == default["mastering_dsp"]
    assert [s["color"] for s in NI_METADATA["stems"]] == [s["color"] for s in default["stems"]]
    assert [s["name"] for s in NI_METADATA["stems"]] == ["Drums", "Bass", "Other", "Vocals"]


# stems separate --format stem.mp4


def test_separate_to_stem_mp4_aac(tmp_path, tiny_checkpoint, example_stems):
    audio, path = example_stems
    name = "The Easton Ellises - Falcon 69"
    out, reference = tmp_path / "out", tmp_path / "wav"
    for args in ((out, "--format", "stem.mp4"), (reference, "--float")):
        result = run("separate", path, "-o", *args, "--checkpoint", tiny_checkpoint)
        assert result.exit_code == 0, result.output
    target = out / f"{name}.stem.mp4"
    assert [p.name for p in out.iterdir()] == [target.name]  # one file, no temporaries left

    probe = streams(target)
    sound = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    assert [s["codec_name"] for s in sound] == ["aac"] * 5
    assert {(s["sample_rate"], s["channels"]) for s in sound} == {(str(RATE), 2)}
    assert all(200_000 < int(s["bit_rate"]) < 300_000 for s in sound)
    assert [s["disposition"]["default"] for s in sound] == [1, 0, 0, 0, 0]
    pictures = [s for s in probe["streams"] if s["codec_type"] == "video"]
    assert len(pictures) == 1 and pictures[0]["disposition"]["attached_pic"] == 1  # the input's cover
    assert probe["format"]["tags"]["major_brand"].strip() == "M4A"
    names = [s["name"] for s in json.loads(udta_box(target, b"stem"))["stems"]]
    assert names == ["Drums", "Bass", "Other", "Vocals"]

    packed = read(target)
    assert packed.shape[:2] == (5, 2) and abs(packed.shape[2] - audio.shape[2]) <= 2048  # AAC padding
    assert snr_db(audio[0], packed[0]) > 20  # the input's own mix, not a sum of stems
    for index, stem in enumerate(NI_STEMS, start=1):
        assert snr_db(load(reference / name / f"{stem}.wav", RATE), packed[index]) > 20, stem


def test_separate_to_stem_mp4_alac_is_lossless(tmp_path, tiny_checkpoint, song_wav):
    out, reference = tmp_path / "out", tmp_path / "wav"
    for args in ((out, "--format", "stem.mp4", "--codec", "alac"), (reference, "--float")):
        result = run("separate", song_wav, "-o", *args, "--checkpoint", tiny_checkpoint)
        assert result.exit_code == 0, result.output
    target = out / "my song.stem.mp4"
    assert [s["codec_name"] for s in streams(target)["streams"]] == ["alac"] * 5
    packed = read(target)
    mix = load(song_wav, RATE)
    assert packed.shape == (5, 2, mix.shape[1])
    np.testing.assert_allclose(packed[0], mix, atol=1e-6)
    for index, stem in enumerate(NI_STEMS, start=1):
        np.testing.assert_allclose(packed[index], load(reference / "my song" / f"{stem}.wav", RATE), atol=1e-6)


@pytest.mark.parametrize("args,problem", [
    (("--format", "stem.mp4", "--two-stems", "vocals"), "--format stem.mp4 always holds all four stems"),
    (("--format", "stem.mp4", "--stems", "vocals"), "--format stem.mp4 always holds all four stems"),
    (("--codec", "alac"), "--codec applies to --format stem.mp4 only"),
    (("--format", "stem.mp4", "--codec", "opus"), "--codec opus: choose from aac, alac"),
])
def test_separate_stem_mp4_usage_errors(tmp_path, tiny_checkpoint, song_wav, args, problem):
    result = run("separate", song_wav, "-o", tmp_path / "out", *args, "--checkpoint", tiny_checkpoint)
    assert result.exit_code == 2 and problem in result.output
    assert not (tmp_path / "out").exists()


def test_stem_mp4_is_written_atomically(tmp_path, tiny_checkpoint, song_wav, monkeypatch):
    out = tmp_path / "out"
    target = out / "my song.stem.mp4"
    out.mkdir()
    target.write_bytes(b"precious")
    result = run("separate", song_wav, "-o", out, "--format", "stem.mp4", "--checkpoint", tiny_checkpoint)
    assert result.exit_code == 1 and "output exists" in result.output

    def broken_encoder(args, source):
        raise StemsError(f"{source}: encoder failed")

    monkeypatch.setattr(stemmp4, "run_ffmpeg", broken_encoder)
    result = run("separate", song_wav, "-o", out, "--format", "stem.mp4", "--overwrite", "--checkpoint", tiny_checkpoint)
    assert result.exit_code == 1 and "encoder failed" in result.output
    assert [p.name for p in out.iterdir()] == [target.name] and target.read_bytes() == b"precious"


# stems export-stems


def write_stems(folder, seconds=2.0, rates=None, lengths=None) -> dict[str, np.ndarray]:
    """Four different stems as wav/flac files in `folder`; "other" is mono. Returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, name in enumerate(NI_STEMS):
        rate = (rates or {}).get(name, RATE)
        audio = synth((lengths or {}).get(name, seconds), channels=1 if name == "other" else 2, seed=seed, rate=rate)
        sf.write(folder / f"{name}.{'flac' if name == 'bass' else 'wav'}", audio.T, rate, subtype="PCM_24")
        written[name] = audio
    return written


def test_export_stems_packs_a_folder(tmp_path):
    musdb = pytest.importorskip("musdb")
    written = write_stems(tmp_path / "song", lengths={"vocals": 1.7})  # shorter: padded with silence
    target = tmp_path / "db" / "test" / "song.stem.mp4"
    result = run("export-stems", tmp_path / "song", "-o", target, "--codec", "alac")
    assert result.exit_code == 0, result.output
    packed = read(target)
    assert packed.shape == (5, 2, 2 * RATE)
    stems = {name: np.pad(np.broadcast_to(a, (2, a.shape[1])), ((0, 0), (0, 2 * RATE - a.shape[1])))
             for name, a in written.items()}
    for index, name in enumerate(NI_STEMS, start=1):
        np.testing.assert_allclose(packed[index], stems[name], atol=1e-6)
    total = sum(stems.values())  # no --mix: the master is the sum, clipped by 24-bit ALAC (and said so)
    assert np.abs(total).max() > 1 and "samples of the mix clipped" in result.output
    np.testing.assert_allclose(packed[0], np.clip(total, -1, 1), atol=1e-5)

    track = musdb.DB(root=str(tmp_path / "db"), subsets="test").tracks[0]  # NI's order is musdb's
    for name in NI_STEMS:  # musdb decodes to 16 bits
        np.testing.assert_allclose(track.targets[name].audio.T, stems[name], atol=1e-4)
    np.testing.assert_allclose(track.audio.T, packed[0], atol=1e-4)


def test_export_stems_with_mix_copies_its_tags_and_cover(tmp_path):
    write_stems(tmp_path / "song")
    mix = synth(2.0, seed=9)
    wav, flac = tmp_path / "mix.wav", tmp_path / "mix.flac"
    sf.write(wav, mix.T, RATE, subtype="PCM_24")
    ffmpeg("-i", wav, "-i", cover_png(tmp_path), "-map", "0", "-map", "1", "-c:v", "copy", "-disposition:v", "attached_pic",
           "-metadata", "title=Song", "-metadata", "artist=Band", "-metadata", "album=Record", flac)
    result = run("export-stems", tmp_path / "song", "--mix", flac, "--codec", "alac")
    assert result.exit_code == 0, result.output
    target = tmp_path / "song.stem.mp4"  # the default: beside the folder
    probe = streams(target)
    assert {k: probe["format"]["tags"][k] for k in ("title", "artist", "album")} == {
        "title": "Song", "artist": "Band", "album": "Record"}
    assert [s["disposition"]["attached_pic"] for s in probe["streams"]] == [0, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(read(target)[0], mix, atol=1e-6)


def _two_drums(folder):
    sf.write(folder / "Drums.mp3", synth(2.0).T, RATE)


def _missing_vocals(folder):
    (folder / "vocals.wav").unlink()


@pytest.mark.parametrize("spoil,problem", [
    (_missing_vocals, "no vocals stem"),
    (_two_drums, "several drums stems (Drums.mp3, drums.wav)"),
    (lambda folder: write_stems(folder, rates={"bass": 48000}), "different sample rates (drums 44100 Hz, bass 48000 Hz"),
    (lambda folder: write_stems(folder, lengths={"other": 3.5}), "lengths differ by more than 1 s"),
])
def test_export_stems_errors(tmp_path, spoil, problem):
    folder = tmp_path / "song"
    write_stems(folder)
    spoil(folder)
    result = run("export-stems", folder, "-o", tmp_path / "out.stem.mp4")
    assert result.exit_code == 1 and problem in result.output, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song"]  # nothing written, no temporaries


def test_export_stems_keeps_existing_output_and_checks_its_arguments(tmp_path):
    write_stems(tmp_path / "song")
    target = tmp_path / "song.stem.mp4"
    target.write_bytes(b"precious")
    result = run("export-stems", tmp_path / "song")
    assert result.exit_code == 1 and "output exists (use --overwrite" in result.output
    assert target.read_bytes() == b"precious"
    assert run("export-stems", tmp_path / "song", "--codec", "mp3").exit_code == 2
    result = run("export-stems", tmp_path / "nowhere")
    assert result.exit_code == 1 and "nowhere: not a directory" in result.output
    assert run("export-stems", tmp_path / "song", "--overwrite").exit_code == 0
    packed = read(target)
    assert packed.shape[:2] == (5, 2) and abs(packed.shape[2] - 2 * RATE) <= 2048  # AAC padding
