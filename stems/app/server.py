"""The local HTTP server behind `stems app`: the page, the library's tracks and stems, the job
queue, uploads and downloads. Built on the same base as `stems audition`'s (`audition.serving`).

Routes (GET and HEAD):
    /                               the page, carrying this launch's token in a <meta> tag
    /static/<asset>                 its script and styles, and the mixer's (stems/audition/static)
    /api/tracks                     {"tracks": [{"key", "name", "stems", "zip", "stem_file"}], "problems"}
    /api/jobs?since=N               {"version", "jobs": [...]}; waits up to 10 s for a version after N
    /api/settings                   {"models", "outputs": [{"name", "label", "format"}], "formats", "choice", "max_upload_mb"}
    /audio/<key>/<file>             a stem file, with single-range requests
    /download/<key>/stems.zip       every stem of a track, as one zip
    /download/<key>/stem.mp4        its NI stem file (packed from its stems on request)
Routes (POST: each needs the token in X-Stems-Token, and a same-origin Origin when one is sent):
    /api/upload                     the file as the raw body, its name (URL-encoded) in X-Filename
    /api/jobs/<id>/cancel
    /api/tracks/<key>/delete
    /api/settings                   {"model", "outputs", "format"}: what the next uploads make

A cross-site page can make a browser POST here, but cannot read the page to learn the token, nor
send the header without a preflight (OPTIONS is refused); a foreign Host (DNS rebinding) or
Origin is refused too. Every refusal is 403.
"""

from __future__ import annotations

import hmac
import json
import secrets
from http import HTTPStatus
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..audition.library import NI_STEMS, Library, Track
from ..audition.server import ASSETS as MIXER_ASSETS
from ..audition.server import track_entry
from ..audition.serving import PAGE_POLICY, PageHandler, PageServer, assets
from ..errors import StemsError
from ..presets import PRESETS
from ..separator import Separator
from ..stemmp4 import STEM_MP4
from ..writers import PER_STEM_FORMATS
from .downloads import StemFiles, delete_track, zip_stems
from .jobs import OUTPUTS, Choice, JobQueue, parse_choice
from .uploads import FOLDER, UploadRefused, Uploads, safe_name

STATIC = Path(__file__).with_name("static")
ASSETS = {**{name: MIXER_ASSETS[name] for name in ("mixer.js", "style.css")},
          **{name: path for name, path in assets(STATIC).items() if name != "index.html"}}
PAGE = (STATIC / "index.html").read_text()
TOKEN_SLOT = "__STEMS_TOKEN__"
TOKEN_HEADER = "X-Stems-Token"
MAX_FORM_BYTES = 4096  # the body of a POST that is not an upload
LONG_POLL_S = 10.0


def _attachment(name: str) -> dict:
    """Content-Disposition for a download named `name` (RFC 6266: UTF-8, with an ASCII fallback)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"}


def track_json(track: Track) -> dict:
    segment = quote(track.key, safe="")
    has_ni_stems = track.packed or set(NI_STEMS) <= {stem.name for stem in track.stems}
    return {**track_entry(track, segment), "key": track.key, "zip": f"/download/{segment}/stems.zip",
            "stem_file": f"/download/{segment}/{STEM_MP4}" if has_ni_stems else None}


class AppHandler(PageHandler):
    server: "AppServer"
    allow = "GET, HEAD, POST"
    timeout = 120  # a stalled upload gives its thread back

    def route(self, path: str, send_body: bool) -> None:
        if path in ("/", "/index.html"):
            page = PAGE.replace(TOKEN_SLOT, self.server.token).encode()
            self.send_bytes(page, "text/html; charset=utf-8", HTTPStatus.OK, {"Content-Security-Policy": PAGE_POLICY}, send_body)
        elif path.startswith("/static/") and path[len("/static/"):] in ASSETS:
            self.send_file(ASSETS[path[len("/static/"):]], send_body)
        elif path == "/api/tracks":
            library = self.server.library
            library.rescan()
            self.send_json({"tracks": [track_json(track) for track in library.tracks], "problems": library.problems}, send_body)
        elif path == "/api/jobs":
            since = parse_qs(urlsplit(self.path).query).get("since", [""])[0]
            version, jobs = self.server.jobs.snapshot(int(since) if since.isdigit() else None, LONG_POLL_S)
            self.send_json({"version": version, "jobs": jobs}, send_body)
        elif path == "/api/settings":
            self.send_json(self.server.settings(), send_body)
        elif path.startswith("/audio/"):
            key, _, name = path[len("/audio/"):].partition("/")
            self.send_stem(self.server.library, self._track(key), unquote(name), send_body)
        elif path.startswith("/download/"):
            key, _, kind = path[len("/download/"):].partition("/")
            self._download(self._track(key), kind, send_body)
        else:
            self.not_found(send_body)

    def _track(self, segment: str) -> Track | None:
        """The track a URL segment names; the library is listed again once when it is not found
        (separated since, by a job or by `stems separate`)."""
        library, key = self.server.library, unquote(segment)
        if library.find(key) is None:
            library.rescan()
        return library.find(key)

    def _download(self, track: Track | None, kind: str, send_body: bool) -> None:
        if track is None or kind not in ("stems.zip", STEM_MP4):
            return self.not_found(send_body)
        if kind == STEM_MP4:
            try:
                packed = self.server.stem_files.file(track)
            except StemsError as error:
                return self.refuse(HTTPStatus.CONFLICT, str(error), send_body)
            return self.send_file(packed, send_body, _attachment(f"{track.name}.{STEM_MP4}"))
        try:
            for stem in track.stems:  # extract a .stem.mp4 now: an error after the headers would be lost
                self.server.library.track_file(track, stem.file)
        except StemsError as error:
            return self.refuse(HTTPStatus.INTERNAL_SERVER_ERROR, str(error), send_body)
        self.send_head(HTTPStatus.OK, "application/zip", None, _attachment(f"{track.name} (stems).zip"))
        if send_body:
            zip_stems(self.server.library, track, self.wfile)

    def do_POST(self) -> None:
        refusal = self._refusal()
        if refusal is not None:
            self.close_connection = True  # the body stays unread
            return self.refuse(HTTPStatus.FORBIDDEN, refusal)
        path = urlsplit(self.path).path
        if path == "/api/upload":
            return self._upload()
        length = self._length()
        if length is None or length > MAX_FORM_BYTES:
            self.close_connection = True
            return self.refuse(HTTPStatus.LENGTH_REQUIRED if length is None else HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"expected a Content-Length of at most {MAX_FORM_BYTES} bytes")
        body = self.rfile.read(length)
        parts = path.strip("/").split("/")
        if path == "/api/settings":
            self._settings(body)
        elif len(parts) == 4 and parts[:2] == ["api", "jobs"] and parts[3] == "cancel" and parts[2].isdigit():
            job = self.server.jobs.cancel(int(parts[2]))
            self.send_json(job.as_json()) if job is not None else self.not_found()
        elif len(parts) == 4 and parts[:2] == ["api", "tracks"] and parts[3] == "delete":
            self._delete(self.server.library.find(unquote(parts[2])))
        else:
            self.not_found()

    def _refusal(self) -> str | None:
        """Why a request that changes state is refused, or None."""
        if not self.host_allowed():
            return "unknown Host"
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            return f"foreign Origin {origin}"
        token = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), self.server.token.encode()):
            return f"missing or wrong {TOKEN_HEADER} (reload the page)"
        return None

    def _length(self) -> int | None:
        """The body's Content-Length; None when missing, malformed, or chunked instead."""
        length = self.headers.get("Content-Length", "")
        return int(length) if length.isdigit() and "Transfer-Encoding" not in self.headers else None

    def _upload(self) -> None:
        length = self._length()
        if length is None:
            self.close_connection = True
            return self.refuse(HTTPStatus.LENGTH_REQUIRED, "send the file as the body, with a Content-Length")
        name = safe_name(unquote(self.headers.get("X-Filename", "")))
        try:
            upload = self.server.uploads.receive(self.rfile, length, name)
            job = self.server.jobs.add(name, upload, self.server.choice)
        except UploadRefused as refused:
            self.close_connection = True
            return self.refuse(refused.status, f"{name}: {refused}")
        except StemsError as error:
            return self.refuse(HTTPStatus.SERVICE_UNAVAILABLE, f"{name}: {error}")
        self.send_json(job.as_json(), status=HTTPStatus.CREATED)

    def _settings(self, body: bytes) -> None:
        try:
            self.server.choice = parse_choice(json.loads(body), list(self.server.models))
        except (ValueError, StemsError) as error:
            return self.refuse(HTTPStatus.BAD_REQUEST, f"settings: {error}")
        self.send_json(self.server.settings())

    def _delete(self, track: Track | None) -> None:
        if track is None:
            return self.not_found()
        self.server.stem_files.forget(track)
        delete_track(self.server.library, track)
        self.send_json({"deleted": track.key})


class AppServer(PageServer):
    """`stems app` on (host, port): separates uploads into `library` (a growing Library).

    Args:
        models: {name shown: what Separator.from_checkpoint takes}; the first is the default.
        max_upload_bytes: the largest file accepted.
    """

    def __init__(self, library: Library, models: dict[str, str], host: str = "127.0.0.1", port: int = 0,
                 max_upload_bytes: int = 2048 << 20, report: Callable[[str], None] = lambda message: None):
        super().__init__(AppHandler, host, port, report)
        self.library, self.models = library, models
        self.token = secrets.token_urlsafe(32)
        self.choice = Choice(next(iter(models)))
        self.uploads = Uploads(library.root / FOLDER, max_upload_bytes)
        self.stem_files = StemFiles(library)
        self.jobs = JobQueue(library.root, self._load)

    def _load(self, model: str) -> Separator:
        try:
            return Separator.from_checkpoint(self.models[model])
        except ValueError as error:
            raise StemsError(f"model {model}: {error}") from None

    def settings(self) -> dict:
        outputs = [{"name": name, "label": label, "format": PRESETS[name].fmt if name in PRESETS else "wav"}
                   for name, label in OUTPUTS.items()]
        return {"models": list(self.models), "outputs": outputs, "formats": list(PER_STEM_FORMATS),
                "choice": self.choice.as_json(), "max_upload_mb": self.uploads.max_bytes >> 20}

    def close(self) -> None:
        """Cancel the jobs (the running one removes its partial files), then close the socket."""
        self.jobs.close()
        self.uploads.close()
        self.server_close()
