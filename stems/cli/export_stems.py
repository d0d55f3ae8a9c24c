"""`stems export-stems`: pack separated stems into one NI Stem file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import StemsError
from ..stemmp4 import CODECS, STEM_MP4, pack_stems
from .common import app, console, fail as _fail


@app.command("export-stems", epilog="Example: stems export-stems \"separated/my song\" -o \"my song.stem.mp4\" --mix \"my song.flac\"")
def export_stems(
    folder: Path = typer.Argument(..., help="Folder with drums, bass, other and vocals files (.wav, .flac, .mp3...)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help=f"The .{STEM_MP4} to write (default: FOLDER.{STEM_MP4})."),
    codec: str = typer.Option("aac", "--codec", help="aac (256 kb/s) or alac (lossless)."),
    mix: Optional[Path] = typer.Option(None, "--mix", help="The original mix, for the master stream and its tags and cover (default: the sum of the stems)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Pack already separated stems into one Native Instruments Stem file for Traktor and Mixxx.

    The stems must share a sample rate. Their lengths (and the mix's) may differ by up to one second,
    as encoder padding does: shorter streams are padded with silence. Anything more is refused.
    """
    if codec not in CODECS:
        _fail(f"--codec {codec}: choose from {', '.join(CODECS)}", 2)
    target = out or folder.with_name(f"{folder.name}.{STEM_MP4}")
    try:
        clipped = pack_stems(folder, target, codec, mix, overwrite)
    except StemsError as error:
        _fail(str(error))
    for stream, count in clipped.items():
        console.print(f"[yellow]warning:[/yellow] {target}: {count} samples of the {stream} clipped", highlight=False)
    console.print(f"wrote {target}", highlight=False)
