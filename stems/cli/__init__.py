"""The `stems` command: thin typer commands over the library, with rich progress and summaries.
One module per command group; importing them registers their commands on `app`."""

import signal
import sys

from . import webapp, separate, info, export_stems, audition, stream, evaluate, train, render  # noqa: F401, I001  (registers the commands, in help order)
from .common import Interrupted, app, console
from ..errors import interrupt, pending_interrupt


def main() -> None:  # pragma: no cover - entry point, tested through subprocesses
    """Run the CLI; SIGINT and SIGTERM unwind it (writers remove their temporary files, finished
    outputs stay) and exit with 128 + the signal's number: 130 or 143."""
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        app(prog_name="stems")
    except Interrupted as stop:
        _exit_interrupted(stop.signum)
    except SystemExit as end:  # a signal Python dropped (inside a __del__) after the last check still counts
        if end.code in (0, None) and pending_interrupt() is not None:
            _exit_interrupted(pending_interrupt())
        raise


def _exit_interrupted(signum: int) -> None:
    console.print(f"[red]interrupted[/red] by {signal.Signals(signum).name}: finished outputs are complete, "
                  "the one in progress was removed", highlight=False)
    sys.exit(128 + signum)


__all__ = ["app", "main"]
