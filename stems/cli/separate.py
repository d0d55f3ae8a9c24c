"""`stems separate`: argument parsing, progress display and the summary; `batch.Batch` runs it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..batch import Batch, parse_shard
from ..errors import StemsError
from ..files import FileResult
from ..manifest import Manifest
from ..masks import GATE_DB, MASK_KINDS
from ..presets import PRESETS, Preset, stem_list
from ..registry import RUNTIMES
from ..stemmp4 import STEM_MP4
from ..writers import BUNDLE_TEMPLATE, DEFAULT_TEMPLATE, FORMATS, PER_STEM_FORMATS, count_words
from .common import app, console, fail as _fail, print_error


DEVICES = ("cpu", "cuda")


@app.command(epilog="Examples: stems separate song.mp3 ~/Music/album -o stems_out --two-stems vocals --format flac\n\n"
                    "stems separate song.mp3 --format stem.mp4 --codec alac   (writes separated/song.stem.mp4)\n\n"
                    "stems separate ~/Music --preset karaoke   (writes separated/<track>/no_vocals.mp3)\n\n"
                    "stems separate ~/Music --preset acapella --format flac   (the preset's vocals, as flac)\n\n"
                    "stems separate /music -o /stems --shard 3/8 --manifest manifests/3.jsonl --skip-existing   "
                    "(the third of 8 machines; run again to resume)")
def separate(
    inputs: list[Path] = typer.Argument(..., help="Audio files or folders (searched recursively)."),
    out_dir: Path = typer.Option(Path("separated"), "-o", "--out", help="Output directory."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Named defaults; the options you give win. "
                                         + "; ".join(f"{name}: {p}" for name, p in PRESETS.items()) + "."),
    fmt: Optional[str] = typer.Option(None, "--format", help=f"Output format: {', '.join(PER_STEM_FORMATS)} (default wav), or {STEM_MP4}: "
                                      "one Native Instruments Stem file per track (the mix, then drums, bass, other, vocals) for Traktor and Mixxx."),
    codec: Optional[str] = typer.Option(None, "--codec", help=f"Codec of --format {STEM_MP4}: aac (256 kb/s, the default) or alac (lossless)."),
    filename: Optional[str] = typer.Option(None, "--filename", help="Output path template inside the output directory: {track}, {stem}, {ext} "
                                           f"(default '{DEFAULT_TEMPLATE}', or '{BUNDLE_TEMPLATE}' for {STEM_MP4})."),
    stems: Optional[str] = typer.Option(None, "--stems", help="Comma-separated outputs: stems, or no_STEM for all the others summed, "
                                        "e.g. 'vocals', 'drums,bass' or 'no_vocals' (the instrumental)."),
    two_stems: Optional[str] = typer.Option(None, "--two-stems", help="Write STEM and no_STEM (e.g. vocals / no_vocals: karaoke)."),
    mask: Optional[str] = typer.Option(None, "--mask", help=f"Mask kind: {', '.join(MASK_KINDS)} (default: the checkpoint's better one)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "--model", help="Registry name (default, fast, quality, lowlatency) or model file, .onnx or .pt (default: the shipped model)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help=f"What runs a registered model: {' or '.join(RUNTIMES)} "
                                          "(default onnx: ONNX Runtime, no torch; cuda defaults to torch)."),
    device: str = typer.Option("cpu", "--device", help=f"Where the network runs: {' or '.join(DEVICES)}."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads for the network (default: one per core but one; every core for a bag or an ensemble: default, quality)."),
    shifts: int = typer.Option(1, "--shifts", help="Average N separations, each with the STFT frame grid shifted by hop/N samples "
                               "(Demucs' shift trick): N times the network's work; see docs/quality.md for what it gains."),
    gate_db: float = typer.Option(GATE_DB, "--gate-db", help="Silence gate: in a frame where a stem's estimate holds less than this share of the mix's energy (dB), the stem gets nothing there (what leaks into a stem that is silent in a section); -inf: off."),
    float_output: bool = typer.Option(False, "--float", help="32-bit float wav (24-bit flac) instead of 16-bit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs whose outputs all exist (outputs appear only when "
                                       "complete): run an interrupted batch again to resume it."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Append one JSON line per input to this file as each finishes: "
                                            "input, status (ok, skipped, failed), outputs, their sha256, duration, seconds, error."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n: separate only every n-th file, from the i-th, of the sorted inputs, "
                                        "so n machines share a catalog (e.g. --shard ${SLURM_ARRAY_TASK_ID}/8)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks."),
) -> None:
    """Separate files into stems: OUT/<track>/<stem>.wav by default, OUT/<track>.stem.mp4 with --format stem.mp4.

    Exit status 0 only when every file succeeded or was skipped; failures are listed at the end.
    """
    from ..reconstruct import output_groups
    from ..separator import Separator

    if preset is not None and preset not in PRESETS:
        _fail(f"--preset {preset}: choose from {', '.join(PRESETS)}", 2)
    chosen = PRESETS[preset] if preset else Preset("no preset")
    fmt = fmt or chosen.fmt or "wav"
    if stems is None and two_stems is None:  # --stems and --two-stems each replace the preset's choice of outputs
        stems = chosen.stems
    if fmt not in FORMATS:
        _fail(f"--format {fmt}: choose from {', '.join(FORMATS)}", 2)
    output = FORMATS[fmt]
    if codec is not None and not output.codecs:
        _fail(f"--codec applies to --format {', '.join(name for name, entry in FORMATS.items() if entry.codecs)} only", 2)
    if codec is not None and codec not in output.codecs:
        _fail(f"--codec {codec}: choose from {', '.join(output.codecs)}", 2)
    if stems and two_stems:
        _fail("--stems and --two-stems cannot be used together", 2)
    if output.stems is not None and (stems or two_stems):
        _fail(f"--format {fmt} always holds all {count_words(output.stems)} stems: it cannot be used with --stems or --two-stems", 2)
    if mask is not None and mask not in MASK_KINDS:
        _fail(f"--mask {mask}: choose from {', '.join(MASK_KINDS)}", 2)
    if device not in DEVICES:
        _fail(f"--device {device}: choose from {', '.join(DEVICES)}", 2)
    if runtime is not None and runtime not in RUNTIMES:
        _fail(f"--runtime {runtime}: choose from {', '.join(RUNTIMES)}", 2)
    if overwrite and skip_existing:
        _fail("--overwrite and --skip-existing cannot be used together", 2)
    try:
        shard_spec = parse_shard(shard) if shard is not None else None
    except ValueError as error:
        _fail(str(error), 2)
    subset = stem_list(stems)
    batch = Batch(inputs, shard_spec)
    if not batch.files:
        for path, why in batch.problems:
            print_error(f"{path}: {why}")
        _fail("no audio files to separate")
    if shard_spec is not None:
        console.print(f"shard {shard_spec[0]}/{shard_spec[1]}: {len(batch.tracks)} of the inputs", highlight=False)
    try:
        separator = Separator.from_checkpoint(checkpoint, runtime, threads, device, shifts=shifts, gate_db=gate_db)
        refusal = output.refusal(separator.sources)
        if refusal:
            raise StemsError(refusal)
        output_groups(separator.sources, subset, two_stems)
        log = Manifest(manifest) if manifest is not None else None
    except (StemsError, ValueError) as error:
        _fail(str(error))
    try:
        with log or contextlib.nullcontext(), _Display(separator.sample_rate, verbose) as display:
            results = batch.run(separator, out_dir, manifest=log, on_start=display.start, progress=display.progress,
                                on_result=display.result, on_error=display.error, stems=subset, two_stems=two_stems,
                                mask=mask, fmt=fmt, template=filename, float_output=float_output, codec=codec,
                                overwrite=overwrite, skip_existing=skip_existing)
    except StemsError as error:  # the manifest could not take a line
        _fail(str(error))
    _summary(results)
    failures = [r.error for r in results if not r.ok] + [f"{p}: {why}" for p, why in batch.problems]
    for line in failures:
        print_error(line)
    if failures:
        console.print(f"{len(failures)} of {len(results) + len(batch.problems)} inputs failed")
        raise typer.Exit(1)


class _Display:
    """A progress bar per file and the warnings of each result, for `Batch.run`'s callbacks.
    `sample_rate`: the model's, for the resampling notes."""

    def __init__(self, sample_rate: int, verbose: bool):
        self.sample_rate, self.verbose = sample_rate, verbose
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)
        self.task = None

    def __enter__(self) -> _Display:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.bar.__exit__(*exc_info)

    def start(self, path: Path) -> None:
        self.task = self.bar.add_task(path.name[:40], total=1.0)

    def progress(self, path: Path, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done / total)

    def error(self, path: Path, error: Exception) -> None:
        if self.verbose:
            console.print_exception()

    def result(self, result: FileResult) -> None:
        self.bar.remove_task(self.task)
        if result.resampled_from:
            console.print(f"{result.path}: resampled from {result.resampled_from} Hz to {self.sample_rate} Hz", highlight=False)
        for stem, count in result.clipped.items():
            console.print(f"[yellow]warning:[/yellow] {result.outputs[stem]}: {count} samples clipped", highlight=False)


STATUS_STYLES = {"ok": "green", "skipped": "yellow", "failed": "red"}


def _summary(results: list[FileResult]) -> None:
    table = Table(title="stems separate")
    for column in ("file", "duration", "seconds", "x real time", "status"):
        table.add_column(column, justify="left" if column in ("file", "status") else "right")
    for r in results:
        done = r.status == "ok"
        table.add_row(r.path.name, f"{r.duration:.1f}" if done else "-", f"{r.seconds:.2f}" if done else "-",
                      f"{r.speed:.1f}" if done else "-", f"[{STATUS_STYLES[r.status]}]{r.status}[/]")
    Console().print(table)
