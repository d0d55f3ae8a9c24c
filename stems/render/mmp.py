"""An LMMS project (.mmp, or .mmpz: zlib behind a 4-byte big-endian length) split into labelled
parts, each as a copy of the project that plays that part alone.

A part is an unmuted instrument track that plays at least one note, either in the song editor or
inside the Beat/Bassline container (whose instruments the song's Beat/Bassline tracks play), or
an unmuted sample track that holds a clip. A part's copy mutes every other part, keeps the
Beat/Bassline and automation tracks as they are, and removes the master channel's (mixer channel
0) effects, whose limiters and compressors would make the parts not add up. The effects of the
other mixer channels stay: each part passes through its own channel's chain alone, so a bus
compressor or a sidechain ducker that several tracks share reacts to that part only, and the mix
(always the sum of the parts) is the song as those parts sound alone.

Labels, first rule that applies: the reviewed table `lmms_projects.json` (every track with a
generic name such as "Default preset"); a sample under a drum folder (drums/, beats/, drumsynth/
but its instrument/, effects/ and misc_fx/) is drums; a sample named for a bass (not a bass drum)
is bass; a track named for a drum or a bass; the kicker plugin (a drum synth) is drums and lb302 (a
bass synth) is bass; everything else is other.
"""

from __future__ import annotations

import copy
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from xml.etree import ElementTree

from ..errors import StemsError
from .labels import stem_of_name

TABLE = Path(__file__).with_name("lmms_projects.json")
GENERIC_NAMES = {"default preset", "standard-preset", "default", "default kicker preset"}
DRUM_FOLDERS = ("drums/", "beats/", "drumsynth/")
NOT_DRUM_FOLDERS = ("drumsynth/instrument/", "drumsynth/effects/", "drumsynth/misc_fx/")
PLUGIN_STEMS = {"kicker": ("drums", "the kicker plugin, a drum synth"), "lb302": ("bass", "the lb302 plugin, a bass synth")}


@dataclass(frozen=True)
class Track:
    """One part of a project: an instrument or sample track that sounds alone in its copy."""

    index: int  # its place among the project's parts (0-based)
    name: str
    plugin: str  # the instrument plugin ("sample track" for a sample track)
    sample: str  # the audiofileprocessor's sample file, relative to /usr/share/lmms/samples ("" if none)
    beat: bool  # inside the Beat/Bassline container
    notes: int  # notes in its patterns (clips for a sample track)
    pitch: float | None  # the median MIDI note number of its notes (LMMS key + 12)
    stem: str  # drums, bass or other
    reason: str  # why it has its label


def read_project(data: bytes, origin: str) -> ElementTree.Element:
    """The XML root of an LMMS project's bytes (.mmp or .mmpz).

    Raises:
        StemsError: the file is damaged (bad zlib stream, wrong length, not LMMS XML), naming `origin`.
    """
    try:
        if not data.lstrip().startswith(b"<"):
            if len(data) < 4:
                raise ValueError("shorter than its 4-byte length")
            xml = zlib.decompress(data[4:])
            if len(xml) != struct.unpack(">I", data[:4])[0]:
                raise ValueError("its length prefix does not match its contents")
            data = xml
        root = ElementTree.fromstring(data)
    except (zlib.error, ValueError, ElementTree.ParseError) as error:
        raise StemsError(f"{origin}: damaged LMMS project ({error})") from None
    if root.tag not in ("lmms-project", "multimedia-project") or root.find("song/trackcontainer") is None:
        raise StemsError(f"{origin}: not an LMMS project (no song track container)")
    return root


def _notes(track: ElementTree.Element) -> list[ElementTree.Element]:
    return track.findall("pattern/note")


def _part_elements(root: ElementTree.Element) -> list[tuple[ElementTree.Element, bool]]:
    """(track element, inside the Beat/Bassline container) of every part, in document order."""
    parts = []
    for track in root.find("song/trackcontainer").findall("track"):
        if track.get("muted") == "1":
            continue
        if track.get("type") == "0" and _notes(track):
            parts.append((track, False))
        elif track.get("type") == "2" and track.find("sampletco") is not None:
            parts.append((track, False))
        elif track.get("type") == "1":
            for inner in track.findall("bbtrack/trackcontainer/track"):
                if inner.get("type") == "0" and inner.get("muted") != "1" and _notes(inner):
                    parts.append((inner, True))
    return parts


def load_table(path: Path = TABLE) -> dict:
    """The reviewed table: project file name → {"licence_note"?, "tracks": {index: {name, stem, why}}}."""
    return json.loads(path.read_text())


def _label(name: str, plugin: str, sample: str, reviewed: dict | None) -> tuple[str, str]:
    if reviewed is not None:
        return reviewed["stem"], f"reviewed: {reviewed['why']}"
    if sample.startswith(DRUM_FOLDERS) and not sample.startswith(NOT_DRUM_FOLDERS):
        return "drums", f"drum sample {sample}"
    if stem_of_name(Path(sample).name) == "bass":
        return "bass", f"bass sample {sample}"
    stem = stem_of_name(name)
    if stem is not None:
        return stem, f"named {name!r}"
    if plugin in PLUGIN_STEMS:
        return PLUGIN_STEMS[plugin]
    return "other", "no drum or bass sample, name or plugin"


def project_tracks(root: ElementTree.Element, project: str, table: dict) -> list[Track]:
    """The parts of a project, labelled (`project`: its file name, the table's key).

    Raises:
        StemsError: a table entry names another track than the project has at its index (the
            table is out of date), or a generic-named instrument has no table entry.
    """
    reviewed = table.get(project, {}).get("tracks", {})
    tracks = []
    for index, (element, beat) in enumerate(_part_elements(root)):
        name = element.get("name", "")
        instrument = element.find("instrumenttrack/instrument")
        plugin = instrument.get("name", "") if instrument is not None else "sample track"
        afp = instrument.find("audiofileprocessor") if instrument is not None else None
        sample = afp.get("src", "") if afp is not None else ""
        entry = reviewed.get(str(index))
        if entry is not None and entry["name"] != name:
            raise StemsError(f"{project}: lmms_projects.json names track {index} {entry['name']!r}, the project {name!r}")
        if entry is None and name.lower() in GENERIC_NAMES and not sample:
            raise StemsError(f"{project}: track {index} ({name!r}, {plugin}) has no label in lmms_projects.json")
        stem, reason = _label(name, plugin, sample, entry)
        keys = [int(note.get("key", 57)) + 12 for note in _notes(element)]
        count = len(keys) if plugin != "sample track" else len(element.findall("sampletco"))
        tracks.append(Track(index, name, plugin, sample, beat, count, float(median(keys)) if keys else None, stem, reason))
    return tracks


def without_master_effects(root: ElementTree.Element) -> ElementTree.Element:
    """A copy of the project whose master channel (mixer channel 0) has no effects."""
    copied = copy.deepcopy(root)
    for channel in copied.findall("song/fxmixer/fxchannel"):
        if channel.get("num") == "0":
            for chain in channel.findall("fxchain"):
                for effect in chain.findall("effect"):
                    chain.remove(effect)
                chain.set("enabled", "0")
                chain.set("numofeffects", "0")
    return copied


def to_xml(root: ElementTree.Element) -> bytes:
    """A project as plain .mmp XML."""
    return b'<?xml version="1.0"?>\n' + ElementTree.tostring(root)


def solo(root: ElementTree.Element, index: int) -> bytes:
    """A copy of the project (plain .mmp XML) in which only part `index` sounds, with no master effects."""
    copied = without_master_effects(root)
    for position, (element, _) in enumerate(_part_elements(copied)):
        element.set("muted", "0" if position == index else "1")
    return to_xml(copied)
