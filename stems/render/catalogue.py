"""The catalogue of song collections to render (COLLECTIONS: each a set of songs that some
installed Debian packages hold), and the soundfonts to render them with.

A collection lists its songs as (name, MIDI file, LMMS project or tracker module bytes, where it came
from); a WAD (Doom's archive) is a 12-byte header ("IWAD"/"PWAD", lump count, directory offset)
and a directory of 16-byte entries (offset, size, 8-byte name); Freedoom's music lumps are named
D_* and hold Standard MIDI Files. The tracker modules' packages state their licences in their
debian/copyright, machine-readable or (pingus-data) in free text.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import StemsError

MidiSong = tuple[str, bytes, str]  # (song name, MIDI file, LMMS project or module bytes, origin: file and lump)


@dataclass(frozen=True)
class SongCollection:
    """A set of songs that some Debian packages install, and how to list and render them."""

    name: str
    package: str  # the Debian packages that install it (space-separated)
    licence: str  # as the package's debian/copyright states it ("per project": each song's card says)
    description: str
    songs: Callable[[], Iterator[MidiSong]]
    markers: tuple[Path, ...]  # files the packages install: all present means installed
    # "midi": played with each soundfont; "lmms": an LMMS project, played by lmms; "module": a
    # tracker module, played by libopenmpt
    kind: str = "midi"

    @property
    def installed(self) -> bool:
        return all(marker.exists() for marker in self.markers)


@dataclass(frozen=True)
class Soundfont:
    name: str
    path: Path
    package: str
    licence: str


def wad_lumps(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every lump of a WAD file.

    Raises:
        StemsError: not a WAD, or a directory entry points outside the file.
    """
    data = path.read_bytes()
    if len(data) < 12 or data[:4] not in (b"IWAD", b"PWAD"):
        raise StemsError(f"{path}: not a WAD file")
    count, directory = struct.unpack_from("<ii", data, 4)
    if count < 0 or directory < 12 or directory + 16 * count > len(data):
        raise StemsError(f"{path}: damaged WAD directory")
    for index in range(count):
        offset, size, raw = struct.unpack_from("<ii8s", data, directory + 16 * index)
        if offset < 0 or size < 0 or offset + size > len(data):
            raise StemsError(f"{path}: lump {index} lies outside the file")
        yield raw.split(b"\0", 1)[0].decode("latin-1"), data[offset: offset + size]


def _distinct(songs: Iterator[MidiSong]) -> Iterator[MidiSong]:
    """The songs whose MIDI bytes were not seen before (Freedoom reuses some tracks)."""
    seen = set()
    for name, midi, origin in songs:
        digest = hashlib.sha256(midi).digest()
        if digest not in seen:
            seen.add(digest)
            yield name, midi, origin


FREEDOOM_DIR = Path("/usr/share/games/doom")
OPENMSX_DIR = Path("/usr/share/games/openttd/baseset/openmsx")


def _freedoom_songs() -> Iterator[MidiSong]:
    def every():
        for wad in sorted(FREEDOOM_DIR.glob("freedoom*.wad")):
            for lump, data in wad_lumps(wad):
                if lump.startswith("D_") and data[:4] == b"MThd":
                    yield f"{wad.stem}-{lump[2:].lower()}", data, f"{wad}:{lump}"
    return _distinct(every())


def _openmsx_songs() -> Iterator[MidiSong]:
    return _distinct((path.stem, path.read_bytes(), str(path)) for path in sorted(OPENMSX_DIR.glob("*.mid")))


LMMS_PROJECTS = Path("/usr/share/lmms/projects")
LMMS_COPYRIGHT = Path("/usr/share/doc/lmms-common/copyright")


def _slug(text: str) -> str:
    """A song name from a file name: lower case, runs of anything but letters and digits as "-"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _lmms_songs() -> Iterator[MidiSong]:
    """LMMS's demo, shorties and tutorial projects (not its templates, which hold no song)."""
    for path in sorted(LMMS_PROJECTS.rglob("*.mmp*")):
        if path.suffix in (".mmp", ".mmpz"):
            yield _slug(path.stem), path.read_bytes(), str(path)


def debian_licence(copyright_text: str, path: str) -> str:
    """The licence that a machine-readable debian/copyright gives to `path` (relative to the
    upstream source): its last "Files:" stanza whose patterns match, as the format specifies
    ("*" matches "/" too)."""
    licence = ""
    for stanza in re.split(r"\n\s*\n", copyright_text):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*((?:.*)(?:\n[ \t].*)*)", stanza, re.MULTILINE))
        if "Files" in fields and "License" in fields:
            if any(fnmatch.fnmatchcase(path, pattern) for pattern in fields["Files"].split()):
                licence = fields["License"].splitlines()[0].strip()
    return licence


def lmms_licence(project: Path) -> str:
    """A project's licence, as lmms-common's debian/copyright states it for data/projects/..."""
    relative = f"data/projects/{project.relative_to(LMMS_PROJECTS).as_posix()}"
    return debian_licence(LMMS_COPYRIGHT.read_text(), relative) or "unknown"


@dataclass(frozen=True)
class ModulePackage:
    package: str
    root: Path  # where it installs the game's data, laid out as in the upstream source
    pattern: str  # its modules, relative to root
    free_text_licence: str = ""  # the licence its debian/copyright states in free text (not machine-readable)


DOC = Path("/usr/share/doc")
MODULE_SUFFIXES = (".mod", ".xm", ".s3m", ".it")
MODULE_PACKAGES = (
    # "GNU General Public License ... either version 2 of the License, or (at your option) any later version"
    ModulePackage("pingus-data", Path("/usr/share/games/pingus"), "data/music/*", "GPL-2+"),
    ModulePackage("tecnoballz-data", Path("/usr/share/games/tecnoballz"), "musics/*"),
    ModulePackage("njam-data", Path("/usr/share/games/njam"), "data/*"),
)


def _module_songs() -> Iterator[MidiSong]:
    """The tracker modules of Pingus, TecnoballZ and Njam."""
    def every():
        for package in MODULE_PACKAGES:
            for path in sorted(package.root.glob(package.pattern)):
                if path.suffix.lower() in MODULE_SUFFIXES:
                    yield _slug(path.stem), path.read_bytes(), str(path)
    return _distinct(every())


def module_licence(module: Path) -> tuple[str, str] | None:
    """(package, licence) of a module of MODULE_PACKAGES, as the package's debian/copyright states
    it; None for a file no package of MODULE_PACKAGES installs."""
    for package in MODULE_PACKAGES:
        if module.is_relative_to(package.root):
            text = (DOC / package.package / "copyright").read_text()
            relative = module.relative_to(package.root).as_posix()
            return package.package, debian_licence(text, relative) or package.free_text_licence or "unknown"
    return None


COLLECTIONS = {collection.name: collection for collection in (
    SongCollection("freedoom", "freedoom", "BSD-3-Clause", "Freedoom's game music: rock, metal, electronic, orchestral",
           _freedoom_songs, (FREEDOOM_DIR / "freedoom2.wad",)),
    SongCollection("openmsx", "openttd-openmsx", "GPL-2", "OpenMSX, OpenTTD's music: ragtime, blues, jazz, pop",
           _openmsx_songs, (OPENMSX_DIR,)),
    SongCollection("lmms", "lmms lmms-common zynaddsubfx-data", "per project",
           "LMMS's demo projects: house, trance, drum and bass, reggaeton, chiptune", _lmms_songs, (LMMS_PROJECTS,), "lmms"),
    SongCollection("modules", " ".join(package.package for package in MODULE_PACKAGES), "per package",
           "Tracker modules of Pingus, TecnoballZ and Njam: game music, jazz, chiptune", _module_songs,
           tuple(package.root for package in MODULE_PACKAGES), "module"),
)}

SOUNDFONTS = (
    Soundfont("fluidr3", Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm", "MIT"),
    Soundfont("musescore", Path("/usr/share/sounds/sf3/MuseScore_General.sf3"), "musescore-general-soundfont", "MIT"),
)


def installed_soundfonts() -> list[Soundfont]:
    """The soundfonts that are installed.

    Raises:
        StemsError: none is, naming the apt-get command that brings them.
    """
    found = [font for font in SOUNDFONTS if font.path.is_file()]
    if not found:
        packages = " ".join(font.package for font in SOUNDFONTS)
        raise StemsError(f"no General MIDI soundfont is installed: apt-get install -y --no-install-recommends {packages}")
    return found


def check_installed(collection: SongCollection) -> None:
    """Raises StemsError naming the apt-get command when `collection`'s packages are not all installed."""
    if not collection.installed:
        raise StemsError(f"{collection.name}: not installed: apt-get install -y --no-install-recommends "
                         f"{collection.package}")
