"""Writing a file whole or not at all: under a temporary name beside it, renamed into place only
when complete, so a failure (disk full, an interrupt) never leaves a partial file nor replaces a
good one. The block-wise audio writers (`audio.StemWriter`) keep the same rule across calls."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


class atomic_path:  # noqa: N801 (used like open(): `with atomic_path(final) as temporary:`)
    """A context manager: the block writes the temporary path it is given; when the block ends
    normally it is renamed to the final path, when it raises anything it is removed.

    Args:
        final: the file to write, or a function giving its path from the written temporary
            (checkpoints are named by their sha256).
        temporary: where to write meanwhile (default `.<final name>.tmp` beside `final`); give a
            per-process name where processes may write one file side by side.

    After the block, `final` is the path written.
    """

    def __init__(self, final: Path | Callable[[Path], Path], temporary: Path | None = None):
        if temporary is None:
            if callable(final):
                raise TypeError("atomic_path: a final path given by a function needs a temporary path")
            temporary = final.with_name(f".{final.name}.tmp")
        self.name_of = final if callable(final) else None
        self.final = None if callable(final) else final
        self.temporary = temporary

    def __enter__(self) -> Path:
        return self.temporary

    def __exit__(self, kind, error, traceback) -> bool:
        try:
            if kind is None:
                if self.name_of is not None:
                    self.final = self.name_of(self.temporary)
                os.replace(self.temporary, self.final)
        finally:
            if kind is not None or self.temporary.exists():  # raised, or the rename itself failed
                self.temporary.unlink(missing_ok=True)
        return False
