"""Uploads of `stems app`: each file is the raw body of one request (no multipart to parse), its
name in a header; the body is streamed to disk under the library, with a size cap and a
free-space check first. The name a browser sends is shown and names the track, but never makes a
path: the file is stored under a random name.

Each launch keeps its uploads in its own folder, `.uploads/<random>/`, and holds an exclusive lock
on the folder's `.lock` file while it runs; the lock dies with the process however it ends. A
launch removes every other launch folder whose lock it can take: what an app killed before it
could clean up (SIGKILL, a power cut) is removed by the next app on the same library, while a
second app running on it keeps its own.
"""

from __future__ import annotations

import errno
import os
import shutil
import unicodedata
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no launch folder counts as abandoned
    fcntl = None

from ..atomic import atomic_path
from ..audio import AUDIO_EXTENSIONS
from ..errors import StemsError

FOLDER = ".uploads"  # hidden: the library lists no dot-folder
CHUNK = 1 << 20
RESERVE_BYTES = 64 << 20  # left free after an upload, for the decoding and the first stems
MAX_NAME_BYTES = 180  # a track name plus " (99)" and a stem file name stay within 255-byte file names


class UploadRefused(StemsError):
    """An upload not kept, with the HTTP status that says why (413, 507, 400)."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def safe_name(sent: str) -> str:
    """The name a browser sent, fit to show and to name a track: its last path component (after
    either separator), without control or format characters (NUL, bidi overrides), without
    leading dots and spaces, at most MAX_NAME_BYTES of UTF-8; "untitled" when nothing is left."""
    name = sent.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = name.lstrip(". ").strip()
    while len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[:-1]}.{ext}" if dot and len(ext) <= 8 and stem else name[:-1]
    return name or "untitled"


def _suffix(name: str) -> str:
    """The audio extension of `name` (how the decoder guesses the container), or none."""
    suffix = Path(name).suffix.lower()
    return suffix if suffix in AUDIO_EXTENSIONS else ""


class Uploads:
    """Where uploads go: `folder` (created), at most `max_bytes` each."""

    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = root, max_bytes
        root.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        locking = root / f".{name}"  # locked before it takes a name another launch looks at
        locking.mkdir()
        self._lock = _hold_lock(locking / LOCK)
        self.folder = locking.rename(root / name)
        remove_abandoned(root)

    def check(self, length: int) -> None:
        """Refuse, before reading a byte, a body over the cap or one the disk cannot hold."""
        if length > self.max_bytes:
            raise UploadRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                f"too large: {length / 2**20:.0f} MB (at most {self.max_bytes / 2**20:.0f} MB, --max-upload-mb)")
        free = shutil.disk_usage(self.folder).free
        if free < length + RESERVE_BYTES:
            raise UploadRefused(HTTPStatus.INSUFFICIENT_STORAGE,
                                f"not enough disk space: {free / 2**20:.0f} MB free under the library, "
                                f"{(length + RESERVE_BYTES) / 2**20:.0f} MB needed")

    def receive(self, body: BinaryIO, length: int, name: str) -> Path:
        """Stream `length` bytes of `body` into a new file under `folder` and return it; `name`
        (already made safe) gives only its extension. Nothing is kept when it fails."""
        self.check(length)
        final = self.folder / f"{uuid.uuid4().hex}{_suffix(name)}"
        try:
            with atomic_path(final, final.with_name(f".{final.name}.part")) as temporary, temporary.open("wb") as out:
                left = length
                while left > 0:
                    chunk = body.read(min(CHUNK, left))
                    if not chunk:
                        raise UploadRefused(HTTPStatus.BAD_REQUEST, f"upload ended after {length - left} of {length} bytes")
                    out.write(chunk)
                    left -= len(chunk)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise UploadRefused(HTTPStatus.INSUFFICIENT_STORAGE, "disk full while receiving the file") from None
            if isinstance(error, TimeoutError):
                raise UploadRefused(HTTPStatus.REQUEST_TIMEOUT, "upload stalled") from None
            raise
        return final

    def close(self) -> None:
        """Remove this launch's folder, then the uploads folder if no other launch is using it."""
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
        try:
            self.root.rmdir()
        except OSError:
            pass


LOCK = ".lock"


def _hold_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on `path` (None where locks are not had)."""
    if fcntl is None:
        return None
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return descriptor


def remove_abandoned(root: Path) -> list[Path]:
    """Remove the launch folders under `root` whose lock no running app holds; returns them."""
    if fcntl is None:
        return []
    removed = []
    for folder in root.iterdir():
        lock = folder / LOCK
        if folder.name.startswith(".") or not folder.is_dir() or folder.is_symlink() or not lock.is_file():
            continue
        descriptor = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a running app's
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(descriptor)
    return removed
