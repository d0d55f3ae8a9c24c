"""scripts/synth_stems.py: the MIDI writer against the Standard MIDI File spec (read back by an
independent parser), the composer's promises (drum channel, bass register, seeding) and, where
fluidsynth and the soundfont are installed, one rendered song read back through the trainer's reader."""

import importlib.util
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stems.data import stem_folder_songs

SCRIPT = Path(__file__).parents[1] / "scripts" / "synth_stems.py"
_spec = importlib.util.spec_from_file_location("synth_stems", SCRIPT)
synth = importlib.util.module_from_spec(_spec)
sys.modules["synth_stems"] = synth  # dataclasses look their module up while the file executes
_spec.loader.exec_module(synth)

CAN_RENDER = shutil.which("fluidsynth") is not None and synth.SOUNDFONT.is_file()


def read_vlq(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, i


def parse_smf(data: bytes) -> tuple[int, int, list[list[tuple]]]:
    """(format, division, tracks): each track a list of (absolute tick, status, meta type or
    None, payload). Accepts running status, which the writer never uses."""
    assert data[:4] == b"MThd"
    length, fmt, count, division = struct.unpack(">IHHH", data[4:14])
    assert length == 6
    i, tracks = 14, []
    for _ in range(count):
        assert data[i: i + 4] == b"MTrk"
        (size,) = struct.unpack(">I", data[i + 4: i + 8])
        chunk, i = data[i + 8: i + 8 + size], i + 8 + size
        events, j, tick, status = [], 0, 0, None
        while j < len(chunk):
            delta, j = read_vlq(chunk, j)
            tick += delta
            if chunk[j] == 0xFF:
                size_, k = read_vlq(chunk, j + 2)
                events.append((tick, 0xFF, chunk[j + 1], chunk[k: k + size_]))
                j = k + size_
            else:
                if chunk[j] & 0x80:
                    status, j = chunk[j], j + 1
                size_ = 1 if status >> 4 in (0xC, 0xD) else 2
                events.append((tick, status, None, chunk[j: j + size_]))
                j += size_
        assert events[-1][1:3] == (0xFF, 0x2F) and all(e[1:3] != (0xFF, 0x2F) for e in events[:-1])
        tracks.append(events)
    assert i == len(data)
    return fmt, division, tracks


def notes_of(track: list[tuple]) -> list[tuple[int, int, int, int, int]]:
    """(channel, tick, length, pitch, velocity) of each note; fails if a held key is struck again."""
    held, notes = {}, []
    for tick, status, _, payload in track:
        kind, channel = status >> 4, status & 0x0F
        if kind == 0x9 and payload[1] > 0:
            assert (channel, payload[0]) not in held, f"key {payload[0]} struck while held at {tick}"
            held[channel, payload[0]] = (tick, payload[1])
        elif kind == 0x8 or (kind == 0x9 and payload[1] == 0):
            start, velocity = held.pop((channel, payload[0]))
            notes.append((channel, start, tick - start, payload[0], velocity))
    assert not held, "notes left sounding"
    return notes


def test_variable_length_quantities_match_the_spec_table():
    table = {0: "00", 0x40: "40", 0x7F: "7F", 0x80: "8100", 0x2000: "C000", 0x3FFF: "FF7F", 0x4000: "818000",
             0x100000: "C08000", 0x1FFFFF: "FFFF7F", 0x200000: "81808000", 0x0FFFFFFF: "FFFFFF7F"}
    for value, encoded in table.items():
        assert synth.vlq(value) == bytes.fromhex(encoded), hex(value)


def test_a_one_note_file_is_byte_exact():
    part = synth.Part("bass", "b", 0, 33, 64, 100, 0, 0, [synth.Note(0, 480, 40, 90)])
    song = synth.Song("t", 500000, 4, 1, [part], {}, 0.0, {})
    expected = bytes.fromhex(
        "4D546864 00000006 0001 0002 01E0"  # header: format 1, 2 tracks, 480 ticks a quarter
        "4D54726B 00000014 00FF5103 07A120 00FF5804 04021808 8F00FF2F00"  # 120 bpm, 4/4, ends at 1920
        "4D54726B 00000026 00FF0301 62 00C021 00B00764 00B00A40 00B05B00 00B05D00"
        "0090285A 83608028 00 8B20FF2F00")  # note on, off 480 ticks later, end at 1920
    assert synth.midi_bytes(song, "bass") == expected


def test_parsed_files_give_back_every_note_and_the_tempo():
    song = synth.compose(3, 0, 6.0)
    for stem in synth.STEMS:
        fmt, division, tracks = parse_smf(synth.midi_bytes(song, stem))
        parts = [p for p in song.parts if p.stem == stem]
        assert (fmt, division, len(tracks)) == (1, synth.TICKS, 1 + len(parts))
        assert tracks[0][0] == (0, 0xFF, 0x51, song.beat_us.to_bytes(3, "big"))
        for part, track in zip(parts, tracks[1:]):
            expected = [(part.channel, n.tick, n.length, n.pitch, n.velocity) for n in synth.untangle(part.notes)]
            assert sorted(notes_of(track)) == sorted(expected) and len(expected) >= song.bars
            controls = {payload[0]: payload[1] for _, status, _, payload in track if status >> 4 == 0xB}
            assert controls == {7: part.volume, 10: part.pan, 91: part.reverb, 93: part.chorus}


def test_overlapping_notes_of_one_pitch_are_cut_where_the_next_starts():
    notes = [synth.Note(0, 500, 60, 90), synth.Note(200, 100, 60, 80), synth.Note(200, 50, 60, 70), synth.Note(0, 900, 64, 90)]
    assert synth.untangle(notes) == [synth.Note(0, 200, 60, 90), synth.Note(0, 900, 64, 90), synth.Note(200, 100, 60, 80)]


def test_drums_only_on_channel_index_9_and_bass_within_e1_to_g3():
    for index in range(30):
        song = synth.compose(0, index, 8.0)
        for stem in synth.STEMS:
            channels = {status & 0x0F for track in parse_smf(synth.midi_bytes(song, stem))[2] for _, status, _, _ in track
                        if status != 0xFF}
            assert (channels == {9}) if stem == "drums" else (9 not in channels), (index, stem, channels)
        bass = [p for p in song.parts if p.stem == "bass"]
        assert len(bass) == 1 and all(28 <= n.pitch <= 55 for n in bass[0].notes)
        assert 1 <= len([p for p in song.parts if p.stem == "other"]) <= 3


def test_same_seed_same_bytes_other_seed_or_index_another_song():
    def files(seed, index):
        song = synth.compose(seed, index, 8.0)
        return [synth.midi_bytes(song, stem) for stem in synth.STEMS]

    assert files(7, 2) == files(7, 2)
    assert all(a != b for a, b in zip(files(7, 2), files(8, 2)))
    assert all(a != b for a, b in zip(files(7, 2), files(7, 3)))


def test_a_missing_soundfont_is_one_line_and_exit_2(tmp_path, capsys):
    assert synth.main([str(tmp_path / "out"), "--soundfont", str(tmp_path / "none.sf2")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "apt-get install" in error and not (tmp_path / "out").exists()


@pytest.mark.skipif(not CAN_RENDER, reason="needs fluidsynth and fluid-soundfont-gm")
def test_a_rendered_song_is_three_aligned_stems_the_trainer_reads(tmp_path, capsys):
    out = tmp_path / "synth"
    assert synth.main([str(out), "--songs", "1", "--seconds", "2", "--seed", "5"]) == 0
    song_dir = out / synth.song_name(5, 0)
    assert sorted(p.name for p in out.iterdir()) == [song_dir.name]  # no .partial left behind
    stems = {}
    for stem in synth.STEMS:
        audio, rate = sf.read(song_dir / f"{stem}.flac", always_2d=True)
        assert rate == 44100 and audio.shape == (2 * 44100, 2)
        assert np.sqrt(np.mean(audio ** 2)) > 1e-3, stem
        stems[stem] = audio
    assert np.abs(sum(stems.values())).max() < 1.0
    songs = stem_folder_songs(out, tmp_path / "cache")
    assert len(songs) == 1 and songs[0].stems.shape == (4, 2, 2 * 44100) and not songs[0].stems[3].any()
    capsys.readouterr()
    assert synth.main([str(out), "--songs", "1", "--seconds", "2", "--seed", "5"]) == 0
    assert "0 new, 1 already there" in capsys.readouterr().out


@pytest.mark.parametrize("option,value", [("--seconds", "0"), ("--songs", "0"), ("--jobs", "0")])
def test_bad_counts_are_one_line_and_exit_2(tmp_path, capsys, option, value):
    assert synth.main([str(tmp_path / "out"), option, value]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and option in error and not (tmp_path / "out").exists()


def test_a_failed_render_stops_with_one_line_and_leaves_no_partial_song(tmp_path, capsys, monkeypatch):
    def broken(midi, soundfont, work):
        raise RuntimeError(f"fluidsynth failed on {work.with_suffix('.mid')}: boom")

    monkeypatch.setattr(synth, "render", broken)
    monkeypatch.setattr(synth.shutil, "which", lambda name: "/usr/bin/fluidsynth")
    soundfont = tmp_path / "fake.sf2"
    soundfont.write_bytes(b"")
    out = tmp_path / "out"
    assert synth.main([str(out), "--songs", "2", "--seconds", "2", "--soundfont", str(soundfont)]) == 1
    assert "boom" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # no song, no .partial staging left behind
