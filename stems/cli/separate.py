"""`stems separate` and `stems info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..audio import OUTPUT_FORMATS, find_audio_files
from ..errors import StemsError
from ..files import DEFAULT_TEMPLATE, STEM_MP4_TEMPLATE, FileResult, track_name
from ..masks import MASK_KINDS
from ..stemmp4 import CODECS, STEM_MP4
from .common import app, console, fail as _fail


@app.command(epilog="Examples: stems separate song.mp3 ~/Music/album -o stems_out --two-stems vocals --format flac\n\n"
                    "stems separate song.mp3 --format stem.mp4 --codec alac   (writes separated/song.stem.mp4)")
def separate(
    inputs: list[Path] = typer.Argument(..., help="Audio files or folders (searched recursively)."),
    out_dir: Path = typer.Option(Path("separated"), "-o", "--out", help="Output directory."),
    fmt: str = typer.Option("wav", "--format", help=f"Output format: {', '.join(OUTPUT_FORMATS)}, or {STEM_MP4}: one "
                            "Native Instruments Stem file per track (the mix, then drums, bass, other, vocals) for Traktor and Mixxx."),
    codec: Optional[str] = typer.Option(None, "--codec", help=f"Codec of --format {STEM_MP4}: aac (256 kb/s, the default) or alac (lossless)."),
    filename: Optional[str] = typer.Option(None, "--filename", help="Output path template inside the output directory: {track}, {stem}, {ext} "
                                           f"(default '{DEFAULT_TEMPLATE}', or '{STEM_MP4_TEMPLATE}' for {STEM_MP4})."),
    stems: Optional[str] = typer.Option(None, "--stems", help="Comma-separated subset to write, e.g. 'vocals' or 'drums,bass'."),
    two_stems: Optional[str] = typer.Option(None, "--two-stems", help="Write STEM and no_STEM (e.g. vocals / no_vocals: karaoke)."),
    mask: Optional[str] = typer.Option(None, "--mask", help=f"Mask kind: {', '.join(MASK_KINDS)} (default: the checkpoint's better one)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint file or registry name (default: the shipped model)."),
    float_output: bool = typer.Option(False, "--float", help="32-bit float wav (24-bit flac) instead of 16-bit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks."),
) -> None:
    """Separate files into stems: OUT/<track>/<stem>.wav by default, OUT/<track>.stem.mp4 with --format stem.mp4.

    Exit status 0 only when every file succeeded; failures are listed at the end.
    """
    from ..files import separate_file
    from ..separator import Separator

    if fmt not in (*OUTPUT_FORMATS, STEM_MP4):
        _fail(f"--format {fmt}: choose from {', '.join(OUTPUT_FORMATS)}, {STEM_MP4}", 2)
    if codec is not None and fmt != STEM_MP4:
        _fail(f"--codec applies to --format {STEM_MP4} only", 2)
    if codec is not None and codec not in CODECS:
        _fail(f"--codec {codec}: choose from {', '.join(CODECS)}", 2)
    if stems and two_stems:
        _fail("--stems and --two-stems cannot be used together", 2)
    if fmt == STEM_MP4 and (stems or two_stems):
        _fail(f"--format {STEM_MP4} always holds all four stems: it cannot be used with --stems or --two-stems", 2)
    if mask is not None and mask not in MASK_KINDS:
        _fail(f"--mask {mask}: choose from {', '.join(MASK_KINDS)}", 2)
    subset = tuple(s.strip() for s in stems.split(",") if s.strip()) if stems else None
    files, problems = find_audio_files(inputs)
    if not files:
        for path, why in problems:
            console.print(f"[red]error:[/red] {path}: {why}", highlight=False)
        _fail("no audio files to separate")
    try:
        separator = Separator.from_checkpoint(checkpoint)
        from ..separator import output_groups

        output_groups(separator.sources, subset, two_stems)
    except (StemsError, ValueError) as error:
        _fail(str(error))
    mask = mask or separator.default_mask
    results: list[FileResult] = []
    used: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as progress:
        for path in files:
            name = track_name(path)
            used[name] = used.get(name, 0) + 1
            if used[name] > 1:  # two inputs with one name never share (and overwrite) outputs
                name = f"{name} ({used[name]})"
            task = progress.add_task(path.name[:40], total=1.0)
            try:
                result = separate_file(
                    separator, path, out_dir, track=name, stems=subset, two_stems=two_stems, mask=mask,
                    fmt=fmt, template=filename, float_output=float_output, codec=codec or "aac", overwrite=overwrite,
                    progress=lambda done, total, task=task: progress.update(task, completed=done / total))
            except StemsError as error:
                result = FileResult(path, error=str(error))
            except Exception as error:  # an unexpected failure of one file must not stop the batch
                if verbose:
                    console.print_exception()
                result = FileResult(path, error=f"{path}: {type(error).__name__}: {error}")
            progress.remove_task(task)
            if result.ok and result.resampled_from:
                console.print(f"{path}: resampled from {result.resampled_from} Hz to {separator.sample_rate} Hz", highlight=False)
            for stem, count in result.clipped.items():
                console.print(f"[yellow]warning:[/yellow] {result.outputs[stem]}: {count} samples clipped", highlight=False)
            results.append(result)
    _summary(results)
    failures = [r.error for r in results if not r.ok] + [f"{p}: {why}" for p, why in problems]
    for line in failures:
        console.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
    if failures:
        console.print(f"{len(failures)} of {len(results) + len(problems)} inputs failed")
        raise typer.Exit(1)


def _summary(results: list[FileResult]) -> None:
    table = Table(title="stems separate")
    for column in ("file", "duration", "seconds", "x real time", "status"):
        table.add_column(column, justify="left" if column in ("file", "status") else "right")
    for r in results:
        table.add_row(r.path.name, f"{r.duration:.1f}" if r.ok else "-", f"{r.seconds:.2f}" if r.ok else "-",
                      f"{r.speed:.1f}" if r.ok else "-", "[green]ok[/green]" if r.ok else "[red]failed[/red]")
    Console().print(table)


@app.command(epilog="Example: stems info checkpoints/default-1a2b3c4d.pt")
def info(
    checkpoint: Optional[str] = typer.Argument(None, help="Checkpoint file or registry name (default: the shipped model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole card as JSON."),
) -> None:
    """Show what a checkpoint is: stems, STFT settings, size, context, training data, metrics, sha256."""
    from ..checkpoint import load_checkpoint

    try:
        model, stft, card = load_checkpoint(checkpoint)
    except StemsError as error:
        _fail(str(error))
    if as_json:
        print(json.dumps(card, indent=2))
        return
    table = Table(title=f"checkpoint {Path(card['path']).name}", show_header=False)
    ms = 1000 / stft.sample_rate
    rows = {
        "stems": ", ".join(model.config.sources),
        "STFT": f"n_fft {stft.n_fft}, hop_length {stft.hop_length}, {stft.sample_rate} Hz",
        "parameters": f"{card['parameters']:,}",
        "context": f"{model.window_frames} frames = {((model.window_frames - 1) * stft.hop_length + stft.n_fft) * ms:.0f} ms of audio",
        "latency": f"{(model.lookahead * stft.hop_length + stft.n_fft) * ms:.0f} ms algorithmic ({model.lookahead} look-ahead frames + STFT window)",
        "default mask": card.get("default_mask", "soft"),
        "training data": ", ".join(card.get("training", {}).get("data", [])) or "-",
        "training steps": str(card.get("training", {}).get("step", "-")),
        "sha256": card["sha256"],
    }
    for key, value in rows.items():
        table.add_row(key, value)
    metrics = card.get("metrics", {})
    for system, row in metrics.get("musdb_valid_bsseval_v4_sdr", {}).items():
        table.add_row(f"valid SDR: {system}", ", ".join(f"{k} {v:.2f}" for k, v in row.items()) + " dB")
    if "musdb_valid_bsseval_v4_sdr" not in metrics and metrics:
        table.add_row("metrics", json.dumps(metrics)[:600])
    Console().print(table)
