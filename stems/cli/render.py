"""`stems dataset render`: training stems rendered from the installed Debian music packages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import StemsError
from .common import console, fail as _fail, needs_extras, print_error
from .train import dataset_app


@dataset_app.command("render", epilog="Examples: stems dataset render data/rendered   |   "
                                      "stems dataset render data/try --collections openmsx --limit 2 --soundfonts fluidr3   |   "
                                      "stems dataset render data/rendered-lmms --collections lmms   |   "
                                      "stems dataset render data/rendered-modules --collections modules")
@needs_extras("dataset render", "mido")
def dataset_render(
    out: Path = typer.Argument(..., help="Folder of <song>/{drums,bass,other}.flac (train.stem_dirs / train.rendered_dirs)."),
    collections: str = typer.Option("freedoom,openmsx", "--collections",
                                    help="The song collections to render, comma-separated: freedoom (apt freedoom), "
                                    "openmsx (apt openttd-openmsx), lmms (apt lmms lmms-common zynaddsubfx-data: "
                                    "LMMS's demo projects, rendered track by track by lmms, once), modules (apt "
                                    "pingus-data tecnoballz-data njam-data libopenmpt0: tracker modules, rendered "
                                    "instrument by instrument by libopenmpt, once)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N songs per collection (drawn with --seed)."),
    seed: int = typer.Option(0, "--seed", help="Which songs --limit draws."),
    soundfonts: Optional[str] = typer.Option(None, "--soundfonts", help="Comma-separated: fluidr3, musescore "
                                             "(default: every one installed; each song is rendered with each)."),
) -> None:
    """Render MIDI songs part by part with fluidsynth into drums, bass and other stems (labelled by
    General MIDI channel and program), one song per MIDI file and soundfont, LMMS projects
    track by track with lmms (labelled by sample, name, plugin or a reviewed table), and tracker
    modules instrument by instrument with libopenmpt (labelled by instrument and sample names;
    a module with no part named for drums or bass, or whose parts do not add up to its whole
    render, is rejected); the stems add up to the mix. Resumable: a song folder that exists is
    complete and skipped. Nothing is downloaded: `scripts/setup.sh data` installs the packages."""
    from ..render.songs import plan, render_all

    try:
        jobs = plan([s.strip() for s in collections.split(",") if s.strip()], limit, seed,
                    [s.strip() for s in soundfonts.split(",") if s.strip()] if soundfonts else None)
    except StemsError as error:
        _fail(str(error))

    def report(result) -> None:
        detail = result.error if result.status in ("failed", "rejected") else f"{result.card['duration'] / 60:.1f} min"
        colour = {"written": "green", "skipped": "dim", "rejected": "yellow", "failed": "red"}[result.status]
        console.print(f"[{colour}]{result.status}[/{colour}] {result.name}: {detail}", highlight=False)

    try:
        results = render_all(out, jobs, report)
    except OSError as error:  # the output folder cannot be made, the disk is full: no partial song is left
        _fail(f"{error.filename or out}: {error.strerror or error}; the songs written before are kept, a rerun resumes")
    table = Table(title=f"stems dataset render -> {out}")
    for column in ("collection", "songs", "minutes", "drums dB", "bass dB", "other dB", "failed"):
        table.add_column(column, justify="left" if column == "collection" else "right")
    for name in dict.fromkeys(r.collection for r in results):
        done = [r.card for r in results if r.collection == name and r.status in ("written", "skipped")]
        levels = {stem: [c["level_db"][stem] for c in done if c["level_db"][stem] is not None] for stem in ("drums", "bass", "other")}
        table.add_row(name, str(len(done)), f"{sum(c['duration'] for c in done) / 60:.1f}",
                      *(f"{sum(v) / len(v):+.1f}" if v else "-" for v in levels.values()),
                      str(sum(r.collection == name and r.status == "failed" for r in results)))
    console.print(table)
    rejected = sum(r.status == "rejected" for r in results)
    if rejected:
        console.print(f"{rejected} of {len(results)} songs rejected (why: above); they are not written")
    failed = [r for r in results if r.status == "failed"]
    for result in failed:
        print_error(f"{result.name}: {result.error}")
    if failed:
        console.print(f"{len(failed)} of {len(results)} songs failed; the others are written")
        raise typer.Exit(1)
