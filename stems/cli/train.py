"""`stems train` and `stems dataset build`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import StemsError
from .common import app, console, fail as _fail, needs_extras, print_error


@app.command(epilog="Example: stems train configs/default.yaml --set train.steps=500 --out runs/try1   |   stems train --resume runs/try1")
@needs_extras("train", "torch", "museval", "matplotlib")  # the network, validation SDR, the curves
def train(
    config: Optional[Path] = typer.Argument(None, help="YAML config (configs/*.yaml); defaults in stems/config.py."),
    overrides: list[str] = typer.Option([], "--set", help="Override any key: --set train.lr=1e-3 --set model.widths=[8,16,32]."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory from its last save."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<config name>)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Train a model; the best checkpoint by validation SDR is written into the run directory."""
    from ..config import ConfigError
    from ..train import resolve_run
    from ..train import train as run_training

    try:
        resolved, run_dir = resolve_run(config, overrides, out, resume)
    except ConfigError as error:
        _fail(str(error), 2)
    except StemsError as error:
        _fail(str(error))
    with Progress(TextColumn("step {task.completed}/{task.total}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("train", total=resolved.train.steps, info="")

        def report(step: int, total: int, loss: float, rate: float, epoch: float) -> None:
            progress.update(task, completed=step, info=f"epoch {epoch:.2f}  loss {loss:.4f}  {rate:.1f} examples/s")

        try:
            result = run_training(resolved, run_dir, resume=resume is not None, device=device, progress=report)
        except StemsError as error:
            _fail(str(error))
    for error in result.skipped:
        console.print(f"[yellow]warning:[/yellow] skipped {error}", highlight=False)
    if result.skipped:
        console.print(f"{len(result.skipped)} songs skipped")
    console.print(f"run directory: {run_dir}; checkpoint: {result.checkpoint}", highlight=False)


dataset_app = typer.Typer(no_args_is_help=True, help="Build training data: mix <> stem pairs, aligned and normalised.")
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("build", epilog="Examples: stems dataset build --mix song.mp3 --vocals acapella.wav -o data/song   |   "
                                     "stems dataset build --csv songs.csv -o data/")
@needs_extras("dataset build", "scipy")
def dataset_build(
    out: Path = typer.Option(..., "-o", "--out", help="Song folder (single pair) or root folder (--csv)."),
    mix: Optional[Path] = typer.Option(None, "--mix", help="The mixture."),
    drums: Optional[Path] = typer.Option(None, "--drums"),
    bass: Optional[Path] = typer.Option(None, "--bass"),
    other: Optional[Path] = typer.Option(None, "--other"),
    vocals: Optional[Path] = typer.Option(None, "--vocals", help="e.g. an acapella of the song."),
    instrumental: Optional[Path] = typer.Option(None, "--instrumental", help="Everything but the vocals."),
    named: list[str] = typer.Option([], "--stem", help="NAME=PATH, repeatable: any stem of the config's model.sources "
                                    "(e.g. --stem piano=piano.wav with --set model.sources=[drums,bass,other,vocals,piano])."),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Batch: columns song,mix, then the config's model.sources "
                                            "(default drums,bass,other,vocals) and instrumental."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its dataset section sets the thresholds, "
                                          "its model.sources the stems."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set dataset.min_residual_snr_db=15"),
) -> None:
    """Align stems to their mix (cross-correlation), match gains (least squares), derive what is
    missing (e.g. other = mix - the rest), check the residual and write <out>/{stem}.wav.

    The stems are the config's model.sources; --drums, --bass, --other and --vocals are short for
    --stem drums=PATH and so on."""
    from ..config import ConfigError, load_config
    from ..pairs import build_from_csv, build_pair

    try:
        resolved = load_config(config, overrides)
    except ConfigError as error:
        _fail(str(error), 2)
    settings, sources = resolved.dataset, resolved.model.sources
    options = {"min_residual_snr_db": settings.min_residual_snr_db, "max_offset_s": settings.max_offset_s,
               "sources": sources}
    given = {k: v for k, v in {"drums": drums, "bass": bass, "other": other, "vocals": vocals,
                               "instrumental": instrumental}.items() if v is not None}
    for item in named:
        name, _, path = item.partition("=")
        name = name.strip()
        if not name or not path:
            _fail(f"--stem {item}: give NAME=PATH (NAME one of {', '.join(sources)})", 2)
        if name in given:
            _fail(f"--stem {item}: {name} is given twice", 2)
        given[name] = Path(path)
    if (csv_file is None) == (mix is None):
        _fail("give either --mix with some stems, or --csv", 2)
    errors: list[tuple[str, str]] = []
    try:
        if csv_file is not None:
            reports, errors = build_from_csv(csv_file, out, **options)
        else:
            if not given:
                _fail("give at least one stem (--vocals, --drums, --bass, --other, --instrumental or --stem NAME=PATH)", 2)
            reports = [build_pair(mix, given, out, **options)]
    except StemsError as error:
        _fail(str(error))
    table = Table(title="stems dataset build")
    for column in ("song", "offsets (samples)", "gains", "residual SNR (dB)", "derived"):
        table.add_column(column)
    for report in reports:
        table.add_row(report.out_dir.name, ", ".join(f"{k} {v:+d}" for k, v in report.offsets.items()),
                      ", ".join(f"{k} {v:.3f}" for k, v in report.gains.items()), f"{report.residual_snr_db:.1f}",
                      ", ".join(report.derived) or "-")
    Console().print(table)
    for song, message in errors:
        print_error(f"{song}: {message}")
    if errors:
        console.print(f"{len(errors)} of {len(errors) + len(reports)} songs rejected")
        raise typer.Exit(1)
