"""`stems app`: the whole tool in a local page: add songs, watch them separate, listen, remix, download."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import StemsError
from .common import Interrupted, app, console, fail as _fail, print_error
from .pages import DEFAULT_PORT, listen, serve, stopped

OFFERED_MODELS = ("default", "fast", "quality")  # of the registry's; lowlatency is for streaming


@app.command("app", epilog="Examples: stems app   (opens the page; tracks go to ./separated)\n\n"
                           "stems app --out ~/Music/stems --port 0 --no-open   (any free port; the URL is printed)")
def app_page(
    out: Path = typer.Option(Path("separated"), "-o", "--out", help="The library: tracks are separated into it, and those "
                             "already there (from the app or `stems separate`) are listed."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but loopback lets other machines connect (with a warning)."),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open the page in the default browser."),
    max_upload_mb: int = typer.Option(2048, "--max-upload-mb", help="The largest file the page accepts, in MB."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "--model", help="Offer this model instead of default, fast and quality: "
                                             "a registry name or a model file (.onnx, or .pt with torch installed)."),
) -> None:
    """Separate songs in a local page: drop them in, watch them separate, listen, remix, download.

    Choose the model and the outputs (four stems, karaoke, acapella, DJ stem file); one model separates the jobs in order, as `stems separate` does. Download each stem, all of them as a zip, an NI stem file or the current mix. The page and audio stay on this machine, and only the page can change anything (each change carries a secret it alone gets). Stop with Ctrl-C: the running job is cancelled, finished tracks stay.
    """
    from ..app.server import AppServer
    from ..audition.library import Library

    if not 0 <= port <= 65535:
        _fail(f"--port {port}: choose 0 (any free port) to 65535", 2)
    if max_upload_mb < 1:
        _fail(f"--max-upload-mb {max_upload_mb}: at least 1", 2)
    models = _models(checkpoint)
    try:
        library = Library(out, growing=True)
    except StemsError as error:
        _fail(str(error))
    for problem in library.problems:
        console.print(f"[yellow]warning:[/yellow] {problem}: not listed", highlight=False)
    server = None
    try:  # from here on, a running job and the scratch files must be cleaned up however we leave
        server = listen(lambda: AppServer(library, models, host, port, max_upload_mb << 20, print_error), host, port)
        count = len(library.tracks)
        serve(server, f"library {out}: {count} track{'' if count == 1 else 's'}; Ctrl-C stops", not no_open,
              "upload files, download and delete tracks")
    except Interrupted as stop:
        raise stopped(stop) from None
    finally:
        if server is not None:
            server.close()
        library.close()


def _models(checkpoint: str | None) -> dict[str, str]:
    """{name shown in the page: what Separator.from_checkpoint takes}; one error line when none is found."""
    from ..registry import registry, resolve

    try:
        if checkpoint is not None:
            if not resolve(checkpoint).is_file():
                _fail(f"--checkpoint {checkpoint}: model file not found")
            return {Path(checkpoint).name: checkpoint}
        names = [name for name in OFFERED_MODELS if name in registry()["models"]]
    except StemsError as error:
        _fail(str(error))
    if not names:
        _fail("no shipped model is registered: give a model file with --checkpoint")
    return {name: name for name in names}
