"""The local HTTP server behind `stems audition`: the page's own assets, a JSON list of tracks and
the stem files of a `Library`, nothing else.

Routes (GET and HEAD only; anything else is 404, other methods 405):
    /                         the page (static/index.html)
    /static/<asset>           a file shipped in stems/audition/static/
    /api/tracks               {"tracks": [{"name", "stems": [{"name", "url", "colour", "sdr"}]}], "sdr_label"}
    /audio/<track>/<file>     a stem file, with single-range requests (206) for seeking players

URLs are looked up in fixed tables, never joined onto a folder, which is what keeps `..`, encoded
`..`, absolute paths and symlinks out. When bound to a loopback address, requests naming another
Host are refused too: a web page elsewhere cannot reach the server through DNS rebinding.
"""

from __future__ import annotations

import json
import math
import mimetypes
import re
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from ..errors import StemsError
from .library import Library

STATIC = Path(__file__).with_name("static")
ASSETS = {path.name: path for path in STATIC.iterdir() if path.is_file()}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".png": "image/png", ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg"}
# the page loads only its own script, style and audio: no inline code, nothing from elsewhere
PAGE_POLICY = "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; object-src 'none'; base-uri 'none'"
CHUNK = 1 << 16
RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _sdr(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None  # JSON has no inf/NaN


def tracks_json(library: Library, sdr_label: str | None) -> bytes:
    tracks = [{"name": track.name,
               "stems": [{"name": stem.name, "url": f"/audio/{index}/{quote(stem.file)}", "colour": stem.colour,
                          "sdr": _sdr(stem.sdr)} for stem in track.stems]}
              for index, track in enumerate(library.tracks)]
    return json.dumps({"tracks": tracks, "sdr_label": sdr_label}).encode()


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(first, last) byte of a single-range `Range` header; None to send the whole file (no
    header, or one we do not parse, as RFC 9110 allows); False when it cannot be satisfied."""
    match = RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        if int(last) == 0:
            return False
        return max(0, size - int(last)), size - 1
    first, last = int(first), min(int(last), size - 1) if last else size - 1
    return (first, last) if first <= last else False


class Handler(BaseHTTPRequestHandler):
    server: "AuditionServer"
    protocol_version = "HTTP/1.1"  # keep-alive: the page fetches several stems from one connection

    def version_string(self) -> str:
        return "stems-audition"  # not the Python version

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _refuse_method(self) -> None:
        self._send_bytes(b"GET and HEAD only\n", "text/plain; charset=utf-8", HTTPStatus.METHOD_NOT_ALLOWED,
                         {"Allow": "GET, HEAD"}, send_body=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal shows the URL and errors, not one line per request

    def _respond(self, send_body: bool) -> None:
        if not self.server.host_allowed(self.headers.get("Host", "")):
            self._send_bytes(b"unknown Host\n", "text/plain; charset=utf-8", HTTPStatus.FORBIDDEN, send_body=send_body)
            return
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send_file(ASSETS["index.html"], send_body, {"Content-Security-Policy": PAGE_POLICY})
        elif path == "/api/tracks":
            self._send_bytes(self.server.tracks_body, "application/json", HTTPStatus.OK, send_body=send_body)
        elif path.startswith("/static/") and path[len("/static/"):] in ASSETS:
            self._send_file(ASSETS[path[len("/static/"):]], send_body)
        elif path.startswith("/audio/"):
            self._send_audio(path, send_body)
        else:
            self._not_found(send_body)

    def _send_audio(self, path: str, send_body: bool) -> None:
        index, _, name = path[len("/audio/"):].partition("/")
        if not index.isdigit() or not name:
            return self._not_found(send_body)
        try:
            found = self.server.library.file(int(index), unquote(name))
        except StemsError as error:  # a .stem.mp4 that ffmpeg cannot split
            self.server.report(str(error))
            return self._send_bytes(f"{error}\n".encode(), "text/plain; charset=utf-8",
                                    HTTPStatus.INTERNAL_SERVER_ERROR, send_body=send_body)
        if found is None:
            return self._not_found(send_body)
        self._send_file(found, send_body, ranged=True)

    def _not_found(self, send_body: bool) -> None:
        self._send_bytes(b"not found\n", "text/plain; charset=utf-8", HTTPStatus.NOT_FOUND, send_body=send_body)

    def _send_bytes(self, body: bytes, content_type: str, status: HTTPStatus, headers: dict | None = None,
                    send_body: bool = True) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": content_type, "Content-Length": str(len(body)),
                           "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_file(self, path: Path, send_body: bool, headers: dict | None = None, ranged: bool = False) -> None:
        try:
            handle = path.open("rb")
        except OSError:
            return self._not_found(send_body)
        with handle:
            size = path.stat().st_size
            span = byte_range(self.headers.get("Range"), size) if ranged else None
            if span is False:
                return self._send_bytes(b"", "text/plain", HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                                        {"Content-Range": f"bytes */{size}"}, send_body)
            first, last = span or (0, size - 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
            content_type = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            extra = {"Accept-Ranges": "bytes", **({"Content-Range": f"bytes {first}-{last}/{size}"} if span else {})} if ranged else {}
            for key, value in {"Content-Type": content_type, "Content-Length": str(last - first + 1),
                               "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                               **extra, **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if send_body:
                handle.seek(first)
                left = last - first + 1
                while left > 0:
                    chunk = handle.read(min(CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page stopped a download (seeking, reloading): nothing to report


class AuditionServer(ThreadingHTTPServer):
    """Serves `library` on (host, port); port 0 picks a free one (see `url`)."""

    daemon_threads = True  # a browser's idle keep-alive connection must not hold up shutdown
    allow_reuse_address = True

    def __init__(self, library: Library, host: str = "127.0.0.1", port: int = 0, sdr_label: str | None = None,
                 report=lambda message: None):
        self.library, self.report = library, report
        self.tracks_body = tracks_json(library, sdr_label)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.loopback = host == "localhost" or (_is_ip(host) and ip_address(host).is_loopback)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def host_allowed(self, host_header: str) -> bool:
        """Any Host when bound to a public address; on loopback, only loopback names."""
        if not self.loopback:
            return True
        name = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        name = name.strip("[]").lower()
        return name == "localhost" or (_is_ip(name) and ip_address(name).is_loopback)


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True
