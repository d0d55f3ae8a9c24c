"""What the page commands (`stems audition`, `stems app`) share: opening the socket with one-line
errors, the URL as the only line on stdout, the browser, and serving until SIGINT or SIGTERM."""

from __future__ import annotations

import errno
import signal
import webbrowser
from typing import Callable, TypeVar

import typer

from ..errors import StemsError
from .common import Interrupted, console, fail

DEFAULT_PORT = 8765
Server = TypeVar("Server")


def listen(make_server: Callable[[], Server], host: str, port: int) -> Server:
    """`make_server()`, or one error line and exit 1 when it cannot listen (a busy port says so)."""
    try:
        return make_server()
    except StemsError as error:
        fail(str(error))
    except (OSError, ValueError) as error:
        hint = " (another server holds it: try --port 0)" if getattr(error, "errno", None) == errno.EADDRINUSE else ""
        fail(f"cannot listen on {host}:{port}: {getattr(error, 'strerror', None) or error}{hint}")


def serve(server, summary: str, open_page: bool, exposes: str) -> None:
    """Warn when other machines can connect (they could `exposes`), print the URL (the only line
    on stdout, for scripts) and `summary`, open the page, and serve until a signal raises Interrupted."""
    if not server.loopback:
        host = server.server_address[0]
        console.print(f"[yellow]warning:[/yellow] listening on {host}: other machines on the network can open the page "
                      f"and {exposes}", highlight=False)
    print(server.url, flush=True)
    console.print(summary, highlight=False)
    if open_page:
        webbrowser.open(server.url)
    server.serve_forever(poll_interval=0.25)


def stopped(stop: Interrupted) -> typer.Exit:
    """Say which signal stopped the server; the exit to raise: 128 + its number (130, 143)."""
    console.print(f"stopped by {signal.Signals(stop.signum).name}", highlight=False)
    return typer.Exit(128 + stop.signum)
