"""The local HTTP server behind `stems audition`: the page's own assets, a JSON list of tracks and
the stem files of a `Library`, nothing else.

Routes (GET and HEAD only; anything else is 404, other methods 405):
    /                         the page (static/index.html)
    /static/<asset>           a file shipped in stems/audition/static/
    /api/tracks               {"tracks": [{"name", "stems": [{"name", "url", "colour", "sdr"}]}], "sdr_label"}
    /audio/<track>/<file>     a stem file, with single-range requests (206) for seeking players

URLs are looked up in fixed tables, never joined onto a folder, which is what keeps `..`, encoded
`..`, absolute paths and symlinks out; `serving` holds what this shares with `stems app`'s server.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable
from urllib.parse import quote, unquote

from .library import Library, Track
from .serving import PAGE_POLICY, PageHandler, PageServer, assets

STATIC = Path(__file__).with_name("static")
ASSETS = assets(STATIC)


def _sdr(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None  # JSON has no inf/NaN


def track_entry(track: Track, segment: str) -> dict:
    """A track as the mixer takes it: its stems at /audio/<segment>/<file>."""
    return {"name": track.name,
            "stems": [{"name": stem.name, "url": f"/audio/{segment}/{quote(stem.file)}", "colour": stem.colour,
                       "sdr": _sdr(stem.sdr)} for stem in track.stems]}


def tracks_json(library: Library, sdr_label: str | None) -> bytes:
    tracks = [track_entry(track, str(index)) for index, track in enumerate(library.tracks)]
    return json.dumps({"tracks": tracks, "sdr_label": sdr_label}).encode()


class Handler(PageHandler):
    server: "AuditionServer"

    def route(self, path: str, send_body: bool) -> None:
        if path in ("/", "/index.html"):
            self.send_file(ASSETS["index.html"], send_body, {"Content-Security-Policy": PAGE_POLICY})
        elif path == "/api/tracks":
            self.send_bytes(self.server.tracks_body, "application/json", 200, send_body=send_body)
        elif path.startswith("/static/") and path[len("/static/"):] in ASSETS:
            self.send_file(ASSETS[path[len("/static/"):]], send_body)
        elif path.startswith("/audio/"):
            index, _, name = path[len("/audio/"):].partition("/")
            tracks = self.server.library.tracks
            track = tracks[int(index)] if index.isdigit() and int(index) < len(tracks) else None
            self.send_stem(self.server.library, track, unquote(name), send_body)
        else:
            self.not_found(send_body)


class AuditionServer(PageServer):
    """Serves `library` on (host, port); port 0 picks a free one (see `url`)."""

    def __init__(self, library: Library, host: str = "127.0.0.1", port: int = 0, sdr_label: str | None = None,
                 report: Callable[[str], None] = lambda message: None):
        self.library = library
        self.tracks_body = tracks_json(library, sdr_label)
        super().__init__(Handler, host, port, report)
