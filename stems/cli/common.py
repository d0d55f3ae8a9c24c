"""What every command shares: the typer app, the one-line error, the training-extras check and
Interrupted (stems.errors)."""

from __future__ import annotations

import functools
import importlib
from typing import Callable

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import Interrupted, MissingExtra

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Split music into drums, bass, other and vocals.")
console = Console(stderr=True, soft_wrap=True)
__all__ = ["Interrupted", "app", "console", "fail", "needs_extras", "print_error"]


def print_error(message: str) -> None:
    """Print one error line on stderr. The message is plain text: brackets in it (pip's
    '.[train]', a file name) are printed, not read as rich markup."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    """Print one error line and exit with `code` (no traceback)."""
    print_error(message)
    raise typer.Exit(code)


def needs_extras(command: str, *modules: str) -> Callable[[Callable], Callable]:
    """Decorate a command that needs the training extras: `modules` are imported before it
    starts, so an inference-only install fails at once, not after minutes of work; a training
    extra missing anywhere in the command (one its options reach, or a dependency of one) fails
    the same way. Either ends in one line and exit status 1:

        error: stems evaluate needs the training extras (museval is not installed): pip install '.[train]' in the stems checkout

    Args:
        command: the command as typed after `stems`, e.g. "dataset build".
        modules: top-level modules of stems.errors.TRAIN_EXTRAS that every run of it imports.
    """
    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def run(*args, **kwargs):
            try:
                for module in modules:
                    importlib.import_module(module)
                return function(*args, **kwargs)
            except ModuleNotFoundError as error:
                missing = MissingExtra.module_of(error)
                if missing is None:
                    raise
                fail(str(MissingExtra(f"stems {command}", missing)))
        return run
    return decorate
