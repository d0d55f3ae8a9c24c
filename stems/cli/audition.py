"""`stems audition`: listen to and remix separated stems in a local web page."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import StemsError
from .common import Interrupted, app, console, fail as _fail, print_error
from .pages import DEFAULT_PORT, listen, serve, stopped


@app.command(epilog="Examples: stems audition \"separated/my song\"   (one track)\n\n"
                    "stems audition separated --port 0 --no-open   (a track list; any free port)\n\n"
                    "stems audition \"separated/my song\" --reference \"musdb/test/my song\"   (SDR beside each stem)")
def audition(
    path: Path = typer.Argument(..., help="A track folder of stems (wav, flac, mp3), a .stem.mp4, or an output folder holding several."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but loopback lets other machines connect (with a warning)."),
    no_open: bool = typer.Option(False, "--no-open", help="Do not open the page in the default browser."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="True stems (<DIR>/<stem>.wav or <DIR>/<track>/<stem>.wav: "
                                             "whole-signal SDR) or a `stems evaluate --json` file (BSSEval SDR), shown beside each stem."),
) -> None:
    """Serve a mixer page for separated stems: faders, mute, solo, meters and waveforms on one
    sample-accurate transport, and a download of the current mix as wav.

    The page and audio stay on this machine (nothing is fetched from the internet). Stop with Ctrl-C.
    Keys: space plays or pauses, 1-9 solo a stem, left and right arrows seek 5 s.
    """
    from ..audition.library import Library

    if not 0 <= port <= 65535:
        _fail(f"--port {port}: choose 0 (any free port) to 65535", 2)
    try:
        library = Library(path)
    except StemsError as error:
        _fail(str(error))
    try:  # from here on, a .stem.mp4's extracted streams must be removed however we leave
        _serve(library, path, host, port, reference, not no_open)
    except Interrupted as stop:
        raise stopped(stop) from None
    finally:
        library.close()


def _serve(library, path: Path, host: str, port: int, reference: Path | None, open_page: bool) -> None:
    """Score (with --reference), listen, print the URL, open the page and serve until a signal."""
    from ..audition.scores import attach_scores
    from ..audition.server import AuditionServer

    tracks = library.tracks
    try:
        if reference is not None:
            console.print(f"scoring {sum(len(t.stems) for t in tracks)} stems against {reference}", highlight=False)
        sdr_label = attach_scores(library, reference, path.name) if reference is not None else None
    except StemsError as error:
        _fail(str(error))
    server = listen(lambda: AuditionServer(library, host, port, sdr_label, report=print_error), host, port)
    try:
        serve(server, f"serving {len(tracks)} track{'s' if len(tracks) > 1 else ''} "
                      f"({', '.join(t.name for t in tracks[:3])}{', ...' if len(tracks) > 3 else ''}); Ctrl-C stops",
              open_page, "download the stems")
    finally:
        server.server_close()
