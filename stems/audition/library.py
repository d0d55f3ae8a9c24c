"""What `stems audition` may serve: the tracks under PATH and their stem files, found once at start.

PATH is a track folder (`separated/song/{drums,bass,other,vocals}.wav`, or any stems `stems
separate` writes: flac, mp3, no_vocals...), a `.stem.mp4`, or an output folder holding several of
either. The server looks files up here by (track, file name) and never turns a URL into a
filesystem path, so nothing outside this list can be reached. A file whose real path (symlinks
resolved) lies outside PATH is left out.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import StemsError

STEM_EXTENSIONS = (".wav", ".flac", ".mp3")  # the formats `stems separate` writes
STEM_MP4_SUFFIX = ".stem.mp4"
NI_STEMS = ("drums", "bass", "other", "vocals")  # a .stem.mp4's streams 1-4, in NI's order
NOT_STEMS = ("mix", "mixture")  # a reference folder's or export's mix beside the stems
EXTRA_COLOURS = ("#E69F00", "#F0E442", "#0072B2", "#999999")  # Okabe-Ito, after NI's four


@dataclass
class Stem:
    name: str
    file: str  # the name the page asks for: /audio/<track index>/<file>
    colour: str
    sdr: float | None = None


@dataclass
class Track:
    name: str
    source: Path  # the folder or .stem.mp4 it comes from
    stems: list[Stem]
    files: dict[str, Path] = field(default_factory=dict)  # file -> path (filled on demand for .stem.mp4)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def packed(self) -> bool:
        return self.source.name.lower().endswith(STEM_MP4_SUFFIX)

    @property
    def key(self) -> str:
        """Its folder's or file's name: unique among the tracks of one output folder."""
        return self.source.name


def _colours(names: list[str]) -> dict[str, str]:
    """NI's stem colours (as our .stem.mp4 files carry them) for the four; others get distinct ones."""
    from ..stemmp4 import NI_METADATA

    ni = {entry["name"].lower(): entry["color"] for entry in NI_METADATA["stems"]}
    extra = iter(EXTRA_COLOURS * (1 + len(names) // len(EXTRA_COLOURS)))
    return {name: ni.get(name) or next(extra) for name in names}


def _order(name: str) -> tuple:
    """drums, bass, other, vocals first (NI's order), then no_<stem> in that order, then the rest."""
    base = name[3:] if name.startswith("no_") else name
    rank = NI_STEMS.index(base) if base in NI_STEMS else len(NI_STEMS)
    return (name.startswith("no_"), rank, name)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root)


def _folder_track(folder: Path, root: Path) -> Track | None:
    """The stems in `folder` (one file per stem name), or None when it holds none."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = path.stem.lower()
        if (path.suffix.lower() not in STEM_EXTENSIONS or name in NOT_STEMS or path.name.startswith(".")
                or not path.is_file() or not _inside(path, root)):
            continue
        if name in found:
            raise StemsError(f"{folder}: several {name} stems ({found[name].name}, {path.name}): keep one")
        found[name] = path
    if not found:
        return None
    names = sorted(found, key=_order)
    colours = _colours(names)
    stems = [Stem(name, found[name].name, colours[name]) for name in names]
    return Track(folder.name, folder, stems, {found[name].name: found[name] for name in names})


def _packed_track(path: Path) -> Track:
    """A .stem.mp4: its four stem streams, extracted to wav when the page first asks for one."""
    colours = _colours(list(NI_STEMS))
    return Track(path.name[: -len(STEM_MP4_SUFFIX)], path, [Stem(name, f"{name}.wav", colours[name]) for name in NI_STEMS])


def find_tracks(folder: Path, root: Path, skip: Callable[[StemsError], None] | None = None) -> list[Track]:
    """The track folders and .stem.mp4 files directly in `folder`, by name (hidden ones and those
    leading outside `root` left out). A folder that is not one track (two files for one stem)
    raises StemsError, or, with `skip`, is given to it and left out."""
    tracks = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if child.name.startswith(".") or not _inside(child, root):
            continue
        if child.is_dir():
            try:
                found = _folder_track(child, root)
            except StemsError as error:
                if skip is None:
                    raise
                skip(error)
                continue
            if found is not None:
                tracks.append(found)
        elif child.is_file() and child.name.lower().endswith(STEM_MP4_SUFFIX):
            tracks.append(_packed_track(child))
    return tracks


class Library:
    """The tracks under `path`; raises StemsError (one line) when there is nothing to serve.

    With `growing`, `path` is an output folder that `stems app` separates into: created if
    missing, perhaps empty, and `rescan` finds its tracks again; a folder in it that is not one
    track is left out and named in `problems`.
    """

    def __init__(self, path: Path, growing: bool = False):
        self.root = path.resolve()
        self._scratch: Path | None = None
        self._scratch_lock, self._scan_lock = threading.Lock(), threading.Lock()
        self.tracks: list[Track] = []
        self.problems: list[str] = []
        if growing:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StemsError(f"{path}: cannot create the folder ({error.strerror})") from None
            self.root = path.resolve()
            self.rescan()
            return
        if not path.exists():
            raise StemsError(f"{path}: no such file or folder")
        if path.is_file():
            if not path.name.lower().endswith(STEM_MP4_SUFFIX):
                raise StemsError(f"{path}: not a folder of stems nor a {STEM_MP4_SUFFIX} file")
            self.root = path.resolve().parent
            self.tracks = [_packed_track(path)]
            return
        track = _folder_track(path, self.root)
        if track is not None:
            self.tracks = [track]
            return
        self.tracks = find_tracks(path, self.root)
        if not self.tracks:
            listed = ", ".join(f"<stem>{ext}" for ext in STEM_EXTENSIONS)
            raise StemsError(f"{path}: no stems here ({listed} or *{STEM_MP4_SUFFIX}, "
                             "in this folder or its track folders)")

    def rescan(self) -> None:
        """Find the tracks of a `growing` output folder again. A .stem.mp4 still there keeps its
        extracted streams (it is not rewritten in place: outputs are renamed into place whole)."""
        with self._scan_lock:
            problems: list[str] = []
            found = find_tracks(self.root, self.root, skip=lambda error: problems.append(str(error)))
            packed = {track.source: track for track in self.tracks if track.packed}
            self.tracks = [packed.get(track.source, track) for track in found]
            self.problems = problems

    def find(self, key: str) -> Track | None:
        """The track whose folder or file is named `key` (`Track.key`), or None."""
        return next((track for track in self.tracks if track.key == key), None)

    def file(self, index: int, name: str) -> Path | None:
        """The file `name` of track `index` (see `track_file`), or None when there is no such track."""
        return self.track_file(self.tracks[index], name) if 0 <= index < len(self.tracks) else None

    def track_file(self, track: Track, name: str) -> Path | None:
        """The file `name` of `track`, or None when it is not one of its stems (or now leads
        outside PATH, e.g. a symlink changed since start). May extract a .stem.mp4 (StemsError)."""
        if name not in {stem.file for stem in track.stems}:
            return None
        if track.packed:
            with track.lock:  # the page asks for the four streams at once: extract them once
                if not track.files:
                    track.files = self._extract(track)
            return track.files[name]
        path = track.files[name]
        return path if _inside(path, self.root) and path.is_file() else None

    def scratch(self) -> Path:
        """A private temporary folder for files made from the tracks, removed by `close`."""
        with self._scratch_lock:
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="stems-audition-"))
        return self._scratch

    def _extract(self, track: Track) -> dict[str, Path]:
        """Write the .stem.mp4's streams 1-4 (drums, bass, other, vocals) as 16-bit wavs, which
        every browser decodes, into a scratch folder that `close` removes."""
        from ..audio import run_ffmpeg

        folder = Path(tempfile.mkdtemp(dir=self.scratch()))
        outputs = {stem.file: folder / stem.file for stem in track.stems}
        args = ["-i", str(track.source)]
        for stream, path in enumerate(outputs.values(), start=1):
            args += ["-map", f"0:a:{stream}", "-c:a", "pcm_s16le", str(path)]
        run_ffmpeg(args, track.source)
        return outputs

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
