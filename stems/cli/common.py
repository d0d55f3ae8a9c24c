"""What every command shares: the typer app and the one-line error."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Split music into drums, bass, other and vocals.")
console = Console(stderr=True, soft_wrap=True)


class Interrupted(BaseException):
    """SIGINT or SIGTERM (raised by `stems.cli.main`'s handlers): a BaseException, so it passes
    through `except Exception` and click's handlers to unwind every writer."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def fail(message: str, code: int = 1) -> None:
    """Print one error line and exit with `code` (no traceback)."""
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
