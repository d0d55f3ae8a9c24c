"""`stems dataset render --collections lmms`: LMMS projects split into labelled parts, each part's copy
muting exactly the other parts without master effects, the reviewed table, licences from
debian/copyright, damaged projects, and one real project rendered into stems that add up to it."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import soundfile as sf

from stems.errors import StemsError
from stems.render import lmms, mmp
from stems.render import songs as rendering
from stems.render.catalogue import COLLECTIONS, LMMS_PROJECTS, debian_licence

from conftest import residual_db

HAS_LMMS = shutil.which("lmms") is not None and LMMS_PROJECTS.is_dir()
needs_lmms = pytest.mark.skipif(not HAS_LMMS, reason="needs lmms and lmms-common (scripts/setup.sh data)")


def track(name: str, plugin: str, keys: list[int], sample: str = "", muted: bool = False) -> str:
    settings = f'<audiofileprocessor src="{sample}"/>' if sample else f"<{plugin}/>"
    notes = "".join(f'<note key="{key}" pos="{48 * i}" len="48" vol="100"/>' for i, key in enumerate(keys))
    return (f'<track type="0" name="{name}" muted="{int(muted)}"><instrumenttrack vol="100" fxch="1">'
            f'<instrument name="{plugin}">{settings}</instrument></instrumenttrack>'
            f'<pattern pos="0">{notes}</pattern></track>')


def tiny_project() -> bytes:
    """A song with drums, bass and other instrument tracks, a muted one, one without notes, an
    automation track, a Beat/Bassline track whose container holds a snare and a generic-named
    synth, master effects and a channel effect."""
    beat = (f'<track type="1" name="Beat/Bassline 0" muted="0"><bbtrack><trackcontainer type="bbtrackcontainer">'
            f'{track("snare01.ogg", "audiofileprocessor", [57], "drums/snare01.ogg")}'
            f'{track("Default preset", "tripleoscillator", [40, 41])}'
            f'</trackcontainer></bbtrack><bbtco pos="0" len="192"/></track>')
    tracks = "".join([
        track("kick01.ogg", "audiofileprocessor", [57, 57], "drums/kick01.ogg"),  # 0: drums by its sample
        track("Fat Bass", "tripleoscillator", [33, 36]),  # 1: bass by its name
        track("Acid", "lb302", [45]),  # 2: bass by its plugin
        track("Boom", "kicker", [57]),  # 3: drums by its plugin
        track("Slap", "audiofileprocessor", [57], "instruments/bassslap01.ogg"),  # 4: bass by its sample
        track("Piano", "audiofileprocessor", [60, 64], "instruments/piano01.ogg"),  # 5: other
        track("Default preset", "zynaddsubfx", [72, 76]),  # 6: by the table
        track("Muted lead", "zynaddsubfx", [80], muted=True),  # not a part: stays muted
        track("Silent", "tripleoscillator", []),  # not a part: no notes
        '<track type="5" name="Automation track" muted="0"><automationtrack/></track>',
        beat,  # parts 7 (snare) and 8 (generic, by the table)
    ])
    mixer = ('<fxmixer><fxchannel num="0" name="Master"><fxchain enabled="1" numofeffects="1">'
             '<effect name="ladspaeffect"/></fxchain></fxchannel>'
             '<fxchannel num="1" name="Bus"><fxchain enabled="1" numofeffects="1"><effect name="eq"/></fxchain>'
             '<send channel="0" amount="1"/></fxchannel></fxmixer>')
    return (f'<?xml version="1.0"?><lmms-project version="1.0"><head bpm="120"/><song>'
            f'<trackcontainer type="song">{tracks}</trackcontainer>{mixer}</song></lmms-project>').encode()


TABLE = {"tiny.mmp": {"tracks": {"6": {"name": "Default preset", "stem": "other", "why": "a high pad"},
                                 "8": {"name": "Default preset", "stem": "bass", "why": "median note 40"}}}}


def mmpz(xml: bytes) -> bytes:
    return struct.pack(">I", len(xml)) + zlib.compress(xml)


def test_parts_are_labelled_by_table_sample_name_and_plugin():
    root = mmp.read_project(tiny_project(), "tiny.mmp")
    tracks = mmp.project_tracks(root, "tiny.mmp", TABLE)
    assert [(t.index, t.name, t.stem, t.beat) for t in tracks] == [
        (0, "kick01.ogg", "drums", False), (1, "Fat Bass", "bass", False), (2, "Acid", "bass", False),
        (3, "Boom", "drums", False), (4, "Slap", "bass", False), (5, "Piano", "other", False),
        (6, "Default preset", "other", False), (7, "snare01.ogg", "drums", True), (8, "Default preset", "bass", True)]
    reasons = [t.reason for t in tracks]
    assert reasons[0] == "drum sample drums/kick01.ogg" and reasons[1] == "named 'Fat Bass'"
    assert "lb302" in reasons[2] and "kicker" in reasons[3] and reasons[6] == "reviewed: a high pad"
    assert tracks[1].notes == 2 and tracks[1].pitch == 46.5  # LMMS key + 12: MIDI note numbers


def test_a_part_copy_mutes_exactly_the_other_parts_and_drops_master_effects():
    root = mmp.read_project(tiny_project(), "tiny.mmp")
    for index in (1, 8):
        copy = ElementTree.fromstring(mmp.solo(root, index))
        sounding = [t.get("name") for t in copy.iter("track") if t.get("muted") == "0"]
        expected = {1: ["Fat Bass", "Silent", "Automation track", "Beat/Bassline 0"],
                    8: ["Silent", "Automation track", "Beat/Bassline 0", "Default preset"]}[index]
        assert sounding == expected  # the muted lead stays muted; tracks that play no note are left
        channels = {c.get("num"): c.find("fxchain") for c in copy.iter("fxchannel")}
        assert channels["0"].findall("effect") == [] and channels["0"].get("enabled") == "0"
        assert len(channels["1"].findall("effect")) == 1  # the part's own channel keeps its effects
    assert ElementTree.tostring(root) == ElementTree.tostring(mmp.read_project(tiny_project(), "tiny.mmp"))


def test_the_table_must_name_the_track_and_cover_every_generic_one():
    root = mmp.read_project(tiny_project(), "tiny.mmp")
    stale = {"tiny.mmp": {"tracks": {**TABLE["tiny.mmp"]["tracks"], "5": {"name": "Organ", "stem": "other", "why": ""}}}}
    with pytest.raises(StemsError, match="names track 5 'Organ', the project 'Piano'"):
        mmp.project_tracks(root, "tiny.mmp", stale)
    with pytest.raises(StemsError, match=r"track 6 \('Default preset', zynaddsubfx\) has no label"):
        mmp.project_tracks(root, "tiny.mmp", {})


def test_mmpz_is_read_and_a_damaged_one_names_its_file():
    assert ElementTree.tostring(mmp.read_project(mmpz(tiny_project()), "a.mmpz")) == \
        ElementTree.tostring(mmp.read_project(tiny_project(), "a.mmp"))
    damaged = mmpz(tiny_project())
    for data, message in ((damaged[:40], "damaged LMMS project"), (damaged[:4] + b"junk" * 10, "damaged LMMS project"),
                          (struct.pack(">I", 5) + damaged[4:], "length prefix does not match"),
                          (b"<html></html>", "not an LMMS project")):
        with pytest.raises(StemsError, match=message) as error:
            mmp.read_project(data, "/x/Broken.mmpz")
        assert str(error.value).startswith("/x/Broken.mmpz: ")


def test_the_licence_is_the_last_matching_stanza_of_debian_copyright():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: someone\nLicense: GPL-2+\n\n"
            "Files: data/projects/demos/Foo-*\n data/projects/*/Bar/*\nCopyright: Foo\nLicense: Artistic-2\n\n"
            "Files: data/projects/demos/Foo-Special.mmpz\nCopyright: Foo\nLicense: CC-BY-SA-4\n Some text.\n")
    assert debian_licence(text, "data/projects/demos/Foo-Song.mmpz") == "Artistic-2"
    assert debian_licence(text, "data/projects/demos/Foo-Special.mmpz") == "CC-BY-SA-4"
    assert debian_licence(text, "data/projects/shorties/Bar/x.mmpz") == "Artistic-2"
    assert debian_licence(text, "data/projects/shorties/Bar-x.mmpz") == "GPL-2+"


def test_a_missing_renderer_names_its_apt_get(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "lmms" else f"/usr/bin/{name}")
    with pytest.raises(StemsError, match="^lmms is not installed: apt-get install -y --no-install-recommends lmms lmms-common"):
        rendering.plan(["lmms"], limit=None, seed=0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(StemsError, match="^fluidsynth is not installed: apt-get install -y --no-install-recommends fluidsynth$"):
        rendering.plan(["freedoom"], limit=None, seed=0)


@needs_lmms
def test_every_installed_project_is_labelled_and_planned_once_without_a_soundfont():
    songs = list(COLLECTIONS["lmms"].songs())
    table = mmp.load_table()
    counts = {"drums": 0, "bass": 0, "other": 0}
    for name, data, origin in songs:
        for part in mmp.project_tracks(mmp.read_project(data, origin), Path(origin).name, table):
            counts[part.stem] += 1
    assert len(songs) == 26 and all(counts[stem] > 20 for stem in counts)
    assert set(table) <= {Path(origin).name for _, _, origin in songs}  # no entry for a project that is gone
    jobs = rendering.plan(["lmms"], 2, 0)
    assert len(jobs) == 2 and all(job[4] is None and job[0].kind == "lmms" for job in jobs)


@pytest.mark.slow
@needs_lmms
def test_a_real_project_renders_into_stems_that_add_up_to_its_render(tmp_path):
    origin = LMMS_PROJECTS / "shorties" / "Crunk(Demo).mmp"  # 17 s, samples and a deterministic chip synth
    result = rendering.render_song(tmp_path, COLLECTIONS["lmms"], "crunk-demo", origin.read_bytes(), str(origin), None)
    folder = tmp_path / "lmms-crunk-demo"
    assert result.status == "written" and sorted(p.name for p in folder.iterdir()) == \
        ["bass.flac", "drums.flac", "other.flac", "song.json"]
    card = json.loads((folder / "song.json").read_text())
    assert card["licence"] == "Artistic-2" and "soundfont" not in card
    assert [(p["name"], p["stem"], p["kept"]) for p in card["parts"]] == \
        [("Kick 01", "drums", True), ("Clap 04", "drums", True), ("Bass", "bass", True), ("Synth", "other", True)]
    stems = [sf.read(folder / f"{s}.flac", always_2d=True, dtype="float32")[0].T for s in ("drums", "bass", "other")]
    mix = sum(stems)
    root = mmp.read_project(origin.read_bytes(), str(origin))
    whole = lmms.render(mmp.to_xml(mmp.without_master_effects(root)), tmp_path / "whole")  # every part at once
    assert residual_db(whole, mix) > 60  # 24-bit stems of parts that add up exactly (a part lost leaves under 10)
    assert abs(max(float(np.abs(a).max()) for a in (mix, *stems)) - rendering.PEAK) < 1e-3  # one gain
