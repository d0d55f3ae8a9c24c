"""`stems dataset render`: MIDI split into labelled parts, WAD lumps, rendering part by part into
stems that add up to the whole song, resuming, and failures that leave nothing half-written."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from stems.errors import StemsError
from stems.render import songs as rendering
from stems.render.command import render_with
from stems.render.fluidsynth import render
from stems.render.midi import split_parts
from stems.render.catalogue import COLLECTIONS, SongCollection, Soundfont, check_installed, wad_lumps

from conftest import residual_db

SOUNDFONT_FILES = sorted(Path("/usr/share/sounds/sf2").glob("*.sf2")) + sorted(Path("/usr/share/sounds/sf3").glob("*.sf3"))
CAN_RENDER = shutil.which("fluidsynth") is not None and bool(SOUNDFONT_FILES)
needs_fluidsynth = pytest.mark.skipif(not CAN_RENDER, reason="needs fluidsynth and a General MIDI soundfont")


def tiny_midi(silent_channel: bool = False) -> bytes:
    """Two seconds at 120 bpm: a piano (channel 1), a bass (channel 2, program 33), drums
    (channel 10) and channel 3 playing a choir then switching to a fretless bass; with
    `silent_channel` channel 4 plays notes at volume 0."""
    midi = mido.MidiFile(type=1, ticks_per_beat=480)
    tempo = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0),
                            mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    midi.tracks.append(tempo)

    def track(channel: int, program: int, notes: list[int], switch_to: int | None = None) -> mido.MidiTrack:
        events = mido.MidiTrack([mido.Message("program_change", channel=channel, program=program, time=0)])
        for index, note in enumerate(notes):
            if switch_to is not None and index == len(notes) // 2:
                events.append(mido.Message("program_change", channel=channel, program=switch_to, time=0))
            events.append(mido.Message("note_on", channel=channel, note=note, velocity=100, time=0))
            events.append(mido.Message("note_off", channel=channel, note=note, velocity=0, time=240))
        return events

    midi.tracks.append(track(0, 0, [60, 64, 67, 72, 67, 64, 60, 64]))
    midi.tracks.append(track(1, 33, [36, 36, 43, 43, 36, 36, 43, 43]))
    midi.tracks.append(track(9, 0, [36, 42, 38, 42, 36, 42, 38, 42]))
    midi.tracks.append(track(2, 52, [55, 57, 59, 60, 40, 41, 43, 45], switch_to=35))
    if silent_channel:
        silent = track(3, 0, [72, 74, 76, 77])
        silent.insert(1, mido.Message("control_change", channel=3, control=7, value=0, time=0))
        silent.insert(2, mido.Message("control_change", channel=3, control=11, value=0, time=0))
        midi.tracks.append(silent)
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def notes_of(part_midi: bytes) -> list[tuple[int, int]]:
    midi = mido.MidiFile(file=io.BytesIO(part_midi))
    return [(m.channel, m.note) for m in midi if m.type == "note_on" and m.velocity > 0]


def test_parts_are_labelled_by_channel_and_the_program_each_note_starts_under():
    parts = split_parts(tiny_midi())
    labels = [(p.channel, p.stem, p.programs, p.notes) for p in parts]
    assert labels == [(0, "other", (0,), 8), (1, "bass", (33,), 8), (2, "bass", (35,), 4), (2, "other", (52,), 4),
                      (9, "drums", (0,), 8)]
    by_key = {(p.channel, p.stem): p for p in parts}
    assert [n for _, n in notes_of(by_key[2, "other"].midi)] == [55, 57, 59, 60]  # the choir is a pad: other
    assert [n for _, n in notes_of(by_key[2, "bass"].midi)] == [40, 41, 43, 45]
    assert "a bass: 32-39" in by_key[1, "bass"].reason and by_key[9, "drums"].reason == "GM channel 10"
    for part in parts:
        midi = mido.MidiFile(file=io.BytesIO(part.midi))
        assert {m.channel for m in midi if hasattr(m, "channel")} == {part.channel}
        assert any(m.type == "set_tempo" for m in midi)  # every part keeps the tempo map
        ons = sum(m.type == "note_on" and m.velocity > 0 for m in midi)
        offs = sum(m.type == "note_off" for m in midi)
        assert ons == offs == part.notes  # each note ends in the part it starts in
        assert abs(midi.length - 2.0) < 1e-6  # and at its original time


def test_a_file_that_is_not_midi_is_a_value_error():
    with pytest.raises(ValueError, match="not a readable MIDI file"):
        split_parts(b"MThd this is not a midi file")


def wad(lumps: list[tuple[str, bytes]]) -> bytes:
    body, directory, offset = b"", b"", 12
    for name, data in lumps:
        directory += struct.pack("<ii8s", offset, len(data), name.encode())
        body += data
        offset += len(data)
    return b"IWAD" + struct.pack("<ii", len(lumps), offset) + body + directory


def test_wad_lumps_are_read_by_their_directory(tmp_path):
    path = tmp_path / "test.wad"
    path.write_bytes(wad([("MAP01", b"xx"), ("D_RUNNIN", tiny_midi()), ("D_E1M1", b"MThd")]))
    lumps = dict(wad_lumps(path))
    assert list(lumps) == ["MAP01", "D_RUNNIN", "D_E1M1"] and lumps["D_RUNNIN"] == tiny_midi()
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(StemsError, match="not a WAD"):
        list(wad_lumps(path))
    broken = bytearray(wad([("D_A", b"abc")]))
    broken[-12:-8] = struct.pack("<i", 10 ** 6)  # the lump's size runs past the end
    path.write_bytes(bytes(broken))
    with pytest.raises(StemsError, match="outside the file"):
        list(wad_lumps(path))


def test_a_collection_that_is_not_installed_names_its_apt_get(tmp_path):
    missing = SongCollection("x", "freedoom", "BSD-3-Clause", "", lambda: iter(()), (tmp_path / "nothing.wad",))
    with pytest.raises(StemsError, match="apt-get install -y --no-install-recommends freedoom"):
        check_installed(missing)


def fake_collection(tmp_path: Path) -> SongCollection:
    return SongCollection("tiny", "none", "CC0", "test songs", lambda: iter(()), (tmp_path,))


def test_the_cli_refuses_an_unknown_collection_in_one_line(tmp_path):
    exe = Path(sys.executable).parent / "stems"
    done = subprocess.run([str(exe), "dataset", "render", "out", "--collections", "nope"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 1 and "unknown collection nope" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and not (tmp_path / "out").exists()


def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stems.cli import app

    monkeypatch.setattr(rendering, "plan", lambda *args: [])  # no package needed: the folder fails first
    (tmp_path / "taken").write_text("a file, not a folder")
    result = CliRunner().invoke(app, ["dataset", "render", str(tmp_path / "taken")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{tmp_path / 'taken'}: File exists; the songs written before are kept" in result.output


@needs_fluidsynth
def test_stems_add_up_to_the_whole_render_and_silent_parts_are_dropped(tmp_path):
    font = Soundfont("test", SOUNDFONT_FILES[0], "fluid-soundfont-gm", "MIT")
    result = rendering.render_song(tmp_path, fake_collection(tmp_path), "song", tiny_midi(silent_channel=True), "test", font)
    folder = tmp_path / "tiny-song-test"
    assert result.status == "written" and sorted(p.name for p in folder.iterdir()) == \
        ["bass.flac", "drums.flac", "other.flac", "song.json"]
    stems = {s: sf.read(folder / f"{s}.flac", always_2d=True, dtype="float32")[0].T for s in ("drums", "bass", "other")}
    card = json.loads((folder / "song.json").read_text())
    assert [(p["channel"], p["stem"], p["kept"]) for p in card["parts"]] == \
        [(1, "other", True), (2, "bass", True), (3, "bass", True), (3, "other", True), (4, "other", False), (10, "drums", True)]
    assert card["licence"] == "CC0" and card["soundfont"]["licence"] == "MIT"
    mix = sum(stems.values())
    assert abs(max(float(np.abs(a).max()) for a in (mix, *stems.values())) - rendering.PEAK) < 1e-4  # one gain
    whole = render(tiny_midi(), font.path, tmp_path / "whole")  # one render of every part at once
    # the stems add up to the song as fluidsynth plays it whole (49 dB with FluidR3, 38 with the
    # small TimGM6mb that CI installs; a part lost or doubled leaves under 10)
    assert residual_db(whole, mix) > 35
    for stem, audio in stems.items():
        assert abs(10 * np.log10(np.square(audio, dtype=np.float64).sum() / np.square(mix, dtype=np.float64).sum())
                   - card["level_db"][stem]) < 0.01
    again = rendering.render_song(tmp_path, fake_collection(tmp_path), "song", tiny_midi(), "test", font)
    assert again.status == "skipped" and again.card == card


@needs_fluidsynth
def test_a_part_that_fails_skips_its_song_whole_and_the_others_go_on(tmp_path, monkeypatch):
    font = Soundfont("test", SOUNDFONT_FILES[0], "fluid-soundfont-gm", "MIT")
    calls = []

    def flaky(midi, soundfont, work, gain=0.5):
        calls.append(work)
        if len(calls) == 3:  # the first song's third part
            raise StemsError("fluidsynth failed on part02.mid: boom")
        return render(midi, soundfont, work, gain)

    monkeypatch.setattr(rendering, "render", flaky)
    collection = fake_collection(tmp_path)
    jobs = [(collection, "first", tiny_midi(), "a", font), (collection, "second", tiny_midi(), "b", font)]
    results = rendering.render_all(tmp_path / "out", jobs)
    assert [(r.name, r.status) for r in results] == [("tiny-first-test", "failed"), ("tiny-second-test", "written")]
    assert "boom" in results[0].error
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["songs.json", "tiny-second-test"]  # no .partial
    index = json.loads((tmp_path / "out" / "songs.json").read_text())
    assert [card["song"] for card in index] == ["tiny-second-test"]


def test_a_renderer_that_hangs_is_a_stems_error_and_its_files_are_removed(tmp_path):
    source, wav = tmp_path / "part.mid", tmp_path / "part.wav"
    source.write_bytes(b"MThd")
    with pytest.raises(StemsError, match="sleep took more than 0 s on part.mid"):
        render_with(["sleep", "5"], source, wav, timeout=0.2)
    assert not source.exists() and not wav.exists()


@pytest.mark.slow
@pytest.mark.skipif(not (CAN_RENDER and COLLECTIONS["freedoom"].installed and COLLECTIONS["openmsx"].installed),
                    reason="needs fluidsynth, a soundfont, freedoom and openttd-openmsx")
def test_one_real_song_of_each_collection_renders_into_stems_the_trainer_reads(tmp_path):
    from stems.data import stem_folder_songs

    exe = Path(sys.executable).parent / "stems"
    done = subprocess.run([str(exe), "dataset", "render", str(tmp_path / "out"), "--limit", "1", "--seed", "3",
                           "--soundfonts", "fluidr3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    cards = json.loads((tmp_path / "out" / "songs.json").read_text())
    assert sorted(card["source"] for card in cards) == ["freedoom", "openmsx"]  # the collection, under its on-disk key
    for card in cards:
        assert card["duration"] > 20 and {p["stem"] for p in card["parts"]} <= {"drums", "bass", "other"}
        assert all(p["stem"] == "drums" for p in card["parts"] if p["channel"] == 10)
    songs = stem_folder_songs(tmp_path / "out", tmp_path / "cache")
    assert len(songs) == 2 and all(not song.stems[3].any() for song in songs)  # no vocals in Debian's music
