"""The batch manifest: one self-contained JSON line per input, appended as each input finishes.

Each line is flushed at once, so a batch that is interrupted keeps the lines of the inputs it
finished, and manifests of several runs or shards merge by concatenation (`cat *.jsonl`; an
input met twice, e.g. "ok" and later "skipped" on a resumed run, counts by its last line). A line:

    {"input": "/music/a.mp3", "status": "ok", "outputs": {"drums": "/stems/a/drums.wav", ...},
     "sha256": {"/stems/a/drums.wav": "9f2c...", ...}, "duration": 183.4, "seconds": 21.7, "error": null}

status is "ok", "skipped" (every output already existed) or "failed" (then error is its one-line
message and outputs is empty); duration is the input's length in seconds (null unless "ok");
seconds is the wall time spent on the input. Paths are absolute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import StemsError
from .files import FileResult
from .registry import sha256_of

def manifest_line(result: FileResult) -> dict:
    """The JSON object of one input (see the module's docstring)."""
    outputs = {stem: os.path.abspath(path) for stem, path in result.outputs.items()} if result.ok else {}
    return {
        "input": os.path.abspath(result.path),
        "status": result.status,
        "outputs": outputs,
        "sha256": {path: sha256_of(Path(path)) for path in sorted(set(outputs.values()))},
        "duration": round(result.duration, 3) if result.status == "ok" else None,
        "seconds": round(result.seconds, 3),
        "error": result.error,
    }


class Manifest:
    """Appends to a .jsonl file (created with its folder when missing); a context manager."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(path, "a", encoding="utf-8")
        except OSError as error:
            raise StemsError(f"{path}: cannot write the manifest ({error.strerror})") from None

    def add(self, result: FileResult) -> None:
        try:
            self.handle.write(json.dumps(manifest_line(result), ensure_ascii=False) + "\n")
            self.handle.flush()
        except OSError as error:
            raise StemsError(f"{self.path}: cannot add the line of {result.path} ({error.strerror})") from None

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
