"""What `stems app` does with a finished track besides playing its stems: all its stems as one zip
(written straight to the response, stored: audio does not compress), its NI stem file (made from
the stems on request when the track is a folder), and deleting it from the library.
"""

from __future__ import annotations

import threading
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

from ..audition.library import Library, Track
from ..stemmp4 import STEM_MP4, pack_stems


def zip_stems(library: Library, track: Track, out: BinaryIO) -> None:
    """Write every stem file of `track` into a zip on `out` (which need not seek), under the
    track's name. May extract a .stem.mp4's streams first (StemsError)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for stem in track.stems:
            path = library.track_file(track, stem.file)
            if path is not None:
                archive.write(path, f"{track.name}/{stem.file}")


class StemFiles:
    """The NI stem file of each track: the track itself when it is one, else packed once from its
    four stems into the library's scratch folder (StemsError when it lacks one of them)."""

    def __init__(self, library: Library):
        self.library = library
        self.made: dict[Path, Path] = {}  # track folder -> packed file
        self.lock = threading.Lock()

    def file(self, track: Track) -> Path:
        if track.packed:
            return track.source
        with self.lock:  # one encoding per track, however many times the link is clicked
            if track.source not in self.made:
                target = self.library.scratch() / f"{uuid.uuid4().hex}.{STEM_MP4}"
                pack_stems(track.source, target)
                self.made[track.source] = target
            return self.made[track.source]

    def forget(self, track: Track) -> None:
        with self.lock:
            made = self.made.pop(track.source, None)
        if made is not None:
            made.unlink(missing_ok=True)


def delete_track(library: Library, track: Track) -> None:
    """Remove `track` from the library: its .stem.mp4, or its stem files and then its folder if
    nothing else is left there (other files in it are the user's); then list the library again."""
    if track.packed:
        track.source.unlink(missing_ok=True)
    else:
        for path in track.files.values():
            path.unlink(missing_ok=True)
        try:
            track.source.rmdir()
        except OSError:
            pass
    library.rescan()
