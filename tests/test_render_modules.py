"""`stems dataset render --collections modules`: tracker modules split into labelled instruments or
samples, each rendered alone by libopenmpt into stems that add up to the whole render, the labels
and their reasons in song.json, the modules rejected (no drum or bass name, parts that do not add
up), unreadable ones, IT and XM headers, and the one-line errors of a missing library or package."""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stems.errors import StemsError
from stems.render import openmpt, tracker
from stems.render import songs as rendering
from stems.render.catalogue import COLLECTIONS, MODULE_PACKAGES, SongCollection, check_installed, module_licence

from conftest import residual_db

try:
    openmpt.library()
    HAS_OPENMPT = True
except StemsError:
    HAS_OPENMPT = False
needs_openmpt = pytest.mark.skipif(not HAS_OPENMPT, reason="needs libopenmpt0")
HAS_MODULES = HAS_OPENMPT and all(package.root.is_dir() for package in MODULE_PACKAGES)
C3 = 428  # the ProTracker period of C-3


def _sample(name: str, data: np.ndarray, volume: int = 64, loop: bool = False) -> tuple[bytes, bytes]:
    """A MOD sample header (30 bytes: name, length, finetune, volume, loop start and length, in
    16-bit words) and its 8-bit data."""
    words = len(data) // 2
    header = name.encode().ljust(22, b"\0") + struct.pack(">HBBHH", words, 0, volume, 0, words if loop else 1)
    return header, data.astype(np.int8).tobytes()


def _cell(sample: int, period: int, effect: int = 0, parameter: int = 0) -> bytes:
    return bytes([(sample & 0xF0) | (period >> 8), period & 0xFF, ((sample & 0x0F) << 4) | effect, parameter])


def tiny_module(names: tuple[str, str, str, str] = ("kick", "bass", "pad", "shaker")) -> bytes:
    """A 4-channel ProTracker module, 64 rows at speed 3 (about 3.8 s): a decaying burst on channel
    1 every 4 rows, a looped square on channel 2 every 8, a looped sine on channel 3 twice, and on
    channel 4 a sample of volume 0 (silent); sample 5, "snare", is never played."""
    t = np.arange(4000)
    samples = [
        _sample(names[0], 120 * np.sin(2 * np.pi * t / 40) * np.exp(-t / 600)),
        _sample(names[1], np.where(t[:64] % 64 < 32, 90, -90), loop=True),
        _sample(names[2], 80 * np.sin(2 * np.pi * t[:400] / 25), loop=True),
        _sample(names[3], 100 * np.sin(2 * np.pi * t[:1000] / 7), volume=0),
        _sample("snare", 100 * np.sin(2 * np.pi * t[:1000] / 9)),
    ]
    headers = b"".join(header for header, _ in samples) + bytes(30 * (31 - len(samples)))
    rows = []
    for row in range(64):
        kick = _cell(1, C3) if row % 4 == 0 else bytes(4)
        bass = _cell(2, C3 * 2) if row % 8 == 0 else bytes(4)
        pad = _cell(3, C3) if row in (0, 32) else bytes(4)
        shaker = _cell(4, C3) if row % 2 == 0 else bytes(4)
        if row == 0:
            shaker = _cell(4, C3, 0xF, 3)  # speed 3
        rows.append(kick + bass + pad + shaker)
    orders = bytes([1, 0x7F]) + bytes(128)
    return (b"tiny".ljust(20, b"\0") + headers + orders + b"M.K." + b"".join(rows)
            + b"".join(data for _, data in samples))


def module_collection(tmp_path: Path) -> SongCollection:
    return SongCollection("tiny", "none", "CC0", "test modules", lambda: iter(()), (tmp_path,), "module")


@pytest.mark.parametrize("name, stem", [
    ("kick", "drums"), ("BassDrum", "drums"), ("bass drum", "drums"), ("closed hihat", "drums"),
    ("hihato:soundwave", "drums"), ("Hihat55", "drums"), ("rack tom", "drums"), ("bd01", "drums"),
    ("Snare-1", "drums"), ("cymbalcrash:*", "drums"), ("conga:*", "drums"), ("drum.010 (no header)", "drums"),
    ("bass", "bass"), ("Bass36", "bass"), ("bass-guitar:maz", "bass"), ("whee-analog-bass:*", "bass"),
    ("sub 1", "bass"), ("H-bass", "bass"),
    ("pad", "other"), ("Bassoon", "other"), ("bass-oboe:*", "other"), ("tomato", "other"), ("24000 Subotica", "other"),
    ("written and tracked by", "other"), ("", "other"), ("hatch", "other"), ("chats", "other"),
    ("sn 2", "drums"), ("Snarre", "drums"),  # LMMS's track names
])
def test_names_are_labelled_by_drum_and_bass_words(name, stem):
    assert tracker.label("sample", name, ())[0] == stem


def test_an_instrument_name_comes_before_its_samples_names():
    assert tracker.label("instrument", "Lead", ("", "kick")) == ("drums", "its sample named 'kick'")
    assert tracker.label("instrument", "Fat bass", ("kick",)) == ("bass", "instrument named 'Fat bass'")
    assert tracker.label("instrument", "by", ("Tyela",)) == ("other", "no drum or bass word in its names")


def tiny_it(swing: tuple[int, int] = (0, 0)) -> bytes:
    """The headers of an IT file (no patterns): two instruments, the first playing samples 1 and 2
    ("kick", "snare") and swinging its volume and pan by `swing`, the second sample 3 ("bass")."""
    header = bytearray(0xC0)
    header[:4] = b"IMPM"
    struct.pack_into("<4H3H", header, 0x20, 1, 2, 3, 0, 0x214, 0x214, 0x05)
    header += bytes([255])  # the order list's end
    table = len(header) + 4 * 5
    instruments, samples = [table, table + 554], [table + 2 * 554 + 80 * index for index in range(3)]
    header += struct.pack("<5I", *instruments, *samples)
    body = b""
    for number, keys in ((1, (1, 2)), (2, (3,))):
        instrument = bytearray(554)
        instrument[:4] = b"IMPI"
        instrument[0x1A:0x1C] = bytes(swing) if number == 1 else bytes(2)
        instrument[0x20:0x24] = f"ins{number}".encode()
        for note in range(120):
            instrument[0x40 + 2 * note: 0x42 + 2 * note] = bytes([note, keys[note % len(keys)]])
        body += instrument
    for name in ("kick", "snare", "bass"):
        sample = bytearray(80)
        sample[:4] = b"IMPS"
        sample[0x14:0x14 + len(name)] = name.encode()
        body += sample
    return bytes(header + body)


def test_it_instruments_name_the_samples_they_play_and_lose_their_random_swing():
    assert tracker.instrument_sample_names(tiny_it()) == [("kick", "snare"), ("bass",)]
    steady, swung = tracker.without_random_swing(tiny_it(swing=(10, 25)))
    assert swung == [0] and steady == tiny_it() and len(steady) == len(tiny_it())
    assert tracker.without_random_swing(tiny_it()) == (tiny_it(), [])
    assert tracker.without_random_swing(tiny_module()) == (tiny_module(), [])  # not an IT file


def test_xm_instruments_name_the_samples_their_keymap_plays():
    header = b"Extended Module: " + b"tiny".ljust(20, b"\0") + b"\x1a" + b"test".ljust(20, b"\0") + b"\x04\x01"
    header += struct.pack("<I8H", 20, 1, 0, 4, 0, 2, 0, 6, 125)  # header size 20: no order table
    samples = [struct.pack("<IIIBbBBbB", 4, 0, 0, 64, 0, 0, 128, 0, 0) + name.ljust(22, b"\0")
               for name in (b"kick", b"bass")]
    keymap = bytes(96)  # every note plays the first sample: "bass" never plays
    first = struct.pack("<I", 263) + b"drumkit".ljust(22, b"\0") + b"\0" + struct.pack("<HI", 2, 40) + keymap
    first = first.ljust(263, b"\0") + b"".join(samples) + bytes(8)
    empty = struct.pack("<I", 29) + b"nothing".ljust(22, b"\0") + b"\0" + struct.pack("<H", 0)
    assert tracker.instrument_sample_names(header + first + empty) == [("kick",), ()]
    assert tracker.instrument_sample_names(header + first[:100]) == []  # damaged


@needs_openmpt
def test_a_module_renders_into_stems_that_add_up_to_its_whole_render(tmp_path):
    result = rendering.render_song(tmp_path, module_collection(tmp_path), "song", tiny_module(), "tiny.mod", None)
    folder = tmp_path / "tiny-song"
    assert result.status == "written" and sorted(p.name for p in folder.iterdir()) == \
        ["bass.flac", "drums.flac", "other.flac", "song.json"]
    card = json.loads((folder / "song.json").read_text())
    assert [(p["sample"], p["name"], p["stem"], p["kept"]) for p in card["parts"]] == \
        [(1, "kick", "drums", True), (2, "bass", "bass", True), (3, "pad", "other", True),
         (4, "shaker", "drums", False)]
    assert [p["notes"] for p in card["parts"]] == [16, 8, 2, 32] and card["parts"][0]["why"] == "sample named 'kick'"
    assert card["format"] == "mod" and card["licence"] == "CC0" and "soundfont" not in card
    assert card["parts_error_db"] is None or card["parts_error_db"] < -100  # libopenmpt's voices add up exactly
    stems = {s: sf.read(folder / f"{s}.flac", always_2d=True, dtype="float32")[0].T for s in ("drums", "bass", "other")}
    mix = sum(stems.values())
    whole = openmpt.render(tiny_module(), "tiny.mod")
    assert residual_db(whole, mix) > 80  # 24-bit stems of parts that add up exactly (one lost leaves under 10)
    assert abs(max(float(np.abs(a).max()) for a in (mix, *stems.values())) - rendering.PEAK) < 1e-3  # one gain
    assert all(float(np.abs(audio).max()) > 0.05 for audio in stems.values())
    again = rendering.render_song(tmp_path, module_collection(tmp_path), "song", tiny_module(), "tiny.mod", None)
    assert again.status == "skipped" and again.card == card


@needs_openmpt
def test_unreadable_unlabelled_and_unadding_modules_are_reported_and_nothing_is_written(tmp_path, monkeypatch):
    collection = module_collection(tmp_path)
    jobs = [(collection, "broken", b"M.K. this is no module", "broken.mod", None),
            (collection, "cut", tiny_it()[:0x30], "cut.it", None),
            (collection, "nameless", tiny_module(("", "music by", "reg", "")), "nameless.mod", None),
            (collection, "good", tiny_module(), "good.mod", None)]
    out = tmp_path / "out"
    results = rendering.render_all(out, jobs)
    assert [(r.name, r.status) for r in results] == [("tiny-broken", "failed"), ("tiny-cut", "failed"),
                                                     ("tiny-nameless", "rejected"), ("tiny-good", "written")]
    assert results[0].error.startswith("broken.mod: libopenmpt cannot read it")
    assert results[1].error.startswith("cut.it: libopenmpt cannot read it")
    assert "none of its 4 parts is named for drums or bass" in results[2].error
    assert sorted(p.name for p in out.iterdir()) == ["songs.json", "tiny-good"]  # no .partial, nothing half-written

    real_render = openmpt.render

    def louder_whole(data, origin, solo=None):  # the whole render holds what no part does
        audio = real_render(data, origin, solo)
        return audio * 1.1 if solo is None else audio

    monkeypatch.setattr(openmpt, "render", louder_whole)
    again = rendering.render_all(tmp_path / "again", [(collection, "good", tiny_module(), "good.mod", None)])
    assert again[0].status == "rejected" and "add up to its whole render within 20.8 dB only" in again[0].error
    assert list((tmp_path / "again").iterdir()) == []


@needs_openmpt
def test_the_cli_reports_a_rejected_module_and_exits_0(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stems.cli import app

    collection = module_collection(tmp_path)
    jobs = [(collection, "nameless", tiny_module(("", "by", "", "")), "nameless.mod", None),
            (collection, "good", tiny_module(), "good.mod", None)]
    monkeypatch.setattr(rendering, "plan", lambda *args: jobs)
    result = CliRunner().invoke(app, ["dataset", "render", str(tmp_path / "out"), "--collections", "modules"])
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert "rejected tiny-nameless: nameless.mod: none of its 4 parts" in result.output
    assert "written tiny-good" in result.output and "1 of 2 songs rejected" in result.output
    assert "collection" in result.output  # the results table's first column


@needs_openmpt
def test_a_libopenmpt_that_refuses_a_render_setting_is_an_error_not_another_render(monkeypatch):
    monkeypatch.setattr(openmpt.library(), "openmpt_module_ctl_set_text", lambda module, key, value: 0)
    with pytest.raises(StemsError, match="refuses the render settings play.at_end = stop, "
                                         "render.resampler.emulate_amiga = 0$"):
        openmpt.render(tiny_module(), "tiny.mod")


def test_a_missing_libopenmpt_is_one_line_naming_its_apt_get(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stems.cli import app

    monkeypatch.setattr(openmpt, "LIBRARY", "libopenmpt-that-is-not-there.so.0")
    openmpt.library.cache_clear()
    try:
        result = CliRunner().invoke(app, ["dataset", "render", str(tmp_path / "out"), "--collections", "modules"])
    finally:
        openmpt.library.cache_clear()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "libopenmpt is not installed" in result.output
    assert "apt-get install -y --no-install-recommends libopenmpt0" in result.output
    assert not (tmp_path / "out").exists()


def test_a_missing_module_package_names_the_apt_get_of_all_three(tmp_path):
    missing = dataclasses.replace(COLLECTIONS["modules"], markers=(tmp_path, tmp_path / "not-installed"))
    with pytest.raises(StemsError, match="modules: not installed: apt-get install -y --no-install-recommends "
                                         "pingus-data tecnoballz-data njam-data"):
        check_installed(missing)


@pytest.mark.skipif(not HAS_MODULES, reason="needs libopenmpt0, pingus-data, tecnoballz-data, njam-data")
def test_the_installed_modules_are_listed_with_their_packages_licences():
    songs = list(COLLECTIONS["modules"].songs())
    assert len(songs) == 38 and len({name for name, _, _ in songs}) == 38
    licences = {module_licence(Path(origin)) for _, _, origin in songs}
    assert licences == {("pingus-data", "GPL-2+"), ("tecnoballz-data", "GPL-3+"), ("njam-data", "GPL-2.0+")}


@pytest.mark.skipif(not HAS_MODULES, reason="needs libopenmpt0, pingus-data, tecnoballz-data, njam-data")
def test_one_real_module_renders_into_stems_the_trainer_reads(tmp_path):
    from stems.data import stem_folder_songs

    exe = Path(sys.executable).parent / "stems"
    done = subprocess.run([str(exe), "dataset", "render", str(tmp_path / "out"), "--collections", "modules",
                           "--limit", "1", "--seed", "4"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    [card] = json.loads((tmp_path / "out" / "songs.json").read_text())
    assert card["song"] == "modules-pingus-1" and card["package"] == "pingus-data" and card["licence"] == "GPL-2+"
    assert {p["stem"] for p in card["parts"] if p["kept"]} == {"drums", "bass", "other"}
    assert card["parts_error_db"] < -100
    songs = stem_folder_songs(tmp_path / "out", tmp_path / "cache")
    assert len(songs) == 1 and not songs[0].stems[3].any()
