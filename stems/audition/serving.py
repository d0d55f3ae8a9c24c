"""What the local page servers (`stems audition`, `stems app`) share: the listening socket and its
URL, the Host check, and the responses: bytes, JSON, files with single-range requests (206) for
seeking players, and a library's stem files.

Subclasses route requests to these; no URL is ever joined onto a folder. When bound to a loopback
address, requests naming another Host are refused (403): a web page elsewhere cannot reach the
server through DNS rebinding.
"""

from __future__ import annotations

import json
import mimetypes
import re
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import StemsError
from .library import Library, Track

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".png": "image/png", ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg",
         ".mp4": "audio/mp4", ".zip": "application/zip"}
# the pages load only their own scripts, styles and audio: no inline code, nothing from elsewhere
PAGE_POLICY = "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; object-src 'none'; base-uri 'none'"
TEXT = "text/plain; charset=utf-8"
CHUNK = 1 << 16
RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def assets(folder: Path) -> dict[str, Path]:
    """{file name: path} of the files a page serves from `folder` (/static/<name>)."""
    return {path.name: path for path in folder.iterdir() if path.is_file() and not path.name.startswith((".", "_"))}


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


class PageHandler(BaseHTTPRequestHandler):
    """GET and HEAD through `route` after the Host check; other methods are 405 (a subclass that
    answers POST defines `do_POST` and widens `allow`)."""

    server: "PageServer"
    protocol_version = "HTTP/1.1"  # keep-alive: a page fetches several stems from one connection
    allow = "GET, HEAD"

    def version_string(self) -> str:
        return "stems"  # not the Python version

    def do_GET(self) -> None:
        self._get(send_body=True)

    def do_HEAD(self) -> None:
        self._get(send_body=False)

    def _refuse_method(self) -> None:
        self.close_connection = True  # a body we did not read must not be taken for the next request
        self.send_bytes(f"{self.allow} only\n".encode(), TEXT, HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": self.allow})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal shows the URL and errors, not one line per request

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the page stopped a download (seeking, reloading) or stalled: nothing to report

    def _get(self, send_body: bool) -> None:
        if not self.host_allowed():
            return self.refuse(HTTPStatus.FORBIDDEN, "unknown Host", send_body)
        self.route(urlsplit(self.path).path, send_body)

    def host_allowed(self) -> bool:
        return self.server.host_allowed(self.headers.get("Host", ""))

    def route(self, path: str, send_body: bool) -> None:
        """Answer a GET (or, without the body, a HEAD) of `path`."""
        raise NotImplementedError

    def refuse(self, status: HTTPStatus, message: str, send_body: bool = True) -> None:
        """One line of text with an error status."""
        self.send_bytes(f"{message}\n".encode(), TEXT, status, send_body=send_body)

    def not_found(self, send_body: bool = True) -> None:
        self.refuse(HTTPStatus.NOT_FOUND, "not found", send_body)

    def send_json(self, value, send_body: bool = True, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_bytes(json.dumps(value).encode(), "application/json", status, send_body=send_body)

    def send_bytes(self, body: bytes, content_type: str, status: HTTPStatus, headers: dict | None = None,
                   send_body: bool = True) -> None:
        self.send_head(status, content_type, len(body), headers)
        if send_body:
            self.wfile.write(body)

    def send_head(self, status: HTTPStatus, content_type: str, length: int | None, headers: dict | None = None) -> None:
        """The status line and headers; without a length the body ends when the connection closes."""
        self.send_response(status)
        if length is None:
            self.close_connection = True
        size = {"Content-Length": str(length)} if length is not None else {"Connection": "close"}
        for key, value in {"Content-Type": content_type, **size,
                           "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()

    def send_file(self, path: Path, send_body: bool, headers: dict | None = None, ranged: bool = False) -> None:
        """`path` whole, or the part a `Range` header asks for when `ranged`; 404 if it cannot be opened."""
        try:
            handle = path.open("rb")
        except OSError:
            return self.not_found(send_body)
        with handle:
            size = path.stat().st_size
            span = byte_range(self.headers.get("Range"), size) if ranged else None
            if span is False:
                return self.send_bytes(b"", "text/plain", HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                                       {"Content-Range": f"bytes */{size}"}, send_body)
            first, last = span or (0, size - 1)
            content_type = TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            extra = {"Accept-Ranges": "bytes", **({"Content-Range": f"bytes {first}-{last}/{size}"} if span else {})} if ranged else {}
            self.send_head(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK, content_type, last - first + 1,
                           {**extra, **(headers or {})})
            if send_body:
                handle.seek(first)
                left = last - first + 1
                while left > 0:
                    chunk = handle.read(min(CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)

    def send_stem(self, library: Library, track: Track | None, name: str, send_body: bool,
                  headers: dict | None = None) -> None:
        """The stem file `name` of `track` (404 when it is none of its stems), with ranges."""
        try:
            found = library.track_file(track, name) if track is not None else None
        except StemsError as error:  # a .stem.mp4 that ffmpeg cannot split
            self.server.report(str(error))
            return self.refuse(HTTPStatus.INTERNAL_SERVER_ERROR, str(error), send_body)
        if found is None:
            return self.not_found(send_body)
        self.send_file(found, send_body, headers, ranged=True)


class PageServer(ThreadingHTTPServer):
    """Serves `handler` on (host, port); port 0 picks a free one (see `url`). `report` takes the
    one-line errors to show in the terminal."""

    daemon_threads = True  # a browser's idle keep-alive connection must not hold up shutdown
    allow_reuse_address = True

    def __init__(self, handler: type[PageHandler], host: str = "127.0.0.1", port: int = 0,
                 report=lambda message: None):
        self.report = report
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)
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
