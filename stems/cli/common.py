"""What every command shares: the typer app, the one-line error and Interrupted (stems.errors)."""

from __future__ import annotations

import typer
from rich.console import Console

from ..errors import Interrupted

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Split music into drums, bass, other and vocals.")
console = Console(stderr=True, soft_wrap=True)
__all__ = ["Interrupted", "app", "console", "fail"]


def fail(message: str, code: int = 1) -> None:
    """Print one error line and exit with `code` (no traceback)."""
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
