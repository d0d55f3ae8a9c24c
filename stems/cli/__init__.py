"""The `stems` command: thin typer commands over the library, with rich progress and summaries.
One module per command group; importing them registers their commands on `app`."""

from . import separate, stream, evaluate, train  # noqa: F401, I001  (registers the commands, in help order)
from .common import app


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="stems")


__all__ = ["app", "main"]
