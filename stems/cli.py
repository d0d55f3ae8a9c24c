"""The `stems` command: thin typer commands over the library, with rich progress and summaries."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .audio import OUTPUT_FORMATS, find_audio_files
from .errors import StemsError
from .files import DEFAULT_TEMPLATE, FileResult, track_name
from .masks import MASK_KINDS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Split music into drums, bass, other and vocals.")
console = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command(epilog="Example: stems separate song.mp3 ~/Music/album -o stems_out --two-stems vocals --format flac")
def separate(
    inputs: list[Path] = typer.Argument(..., help="Audio files or folders (searched recursively)."),
    out_dir: Path = typer.Option(Path("separated"), "-o", "--out", help="Output directory."),
    fmt: str = typer.Option("wav", "--format", help=f"Output format: {', '.join(OUTPUT_FORMATS)}."),
    filename: str = typer.Option(DEFAULT_TEMPLATE, "--filename", help="Output path template inside the output directory: {track}, {stem}, {ext}."),
    stems: Optional[str] = typer.Option(None, "--stems", help="Comma-separated subset to write, e.g. 'vocals' or 'drums,bass'."),
    two_stems: Optional[str] = typer.Option(None, "--two-stems", help="Write STEM and no_STEM (e.g. vocals / no_vocals: karaoke)."),
    mask: Optional[str] = typer.Option(None, "--mask", help=f"Mask kind: {', '.join(MASK_KINDS)} (default: the checkpoint's better one)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint file or registry name (default: the shipped model)."),
    float_output: bool = typer.Option(False, "--float", help="32-bit float wav (24-bit flac) instead of 16-bit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks."),
) -> None:
    """Separate files into stems: OUT/<track>/<stem>.wav by default.

    Exit status 0 only when every file succeeded; failures are listed at the end.
    """
    from .files import separate_file
    from .separator import Separator

    if fmt not in OUTPUT_FORMATS:
        _fail(f"--format {fmt}: choose from {', '.join(OUTPUT_FORMATS)}", 2)
    if stems and two_stems:
        _fail("--stems and --two-stems cannot be used together", 2)
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
        from .separator import output_groups

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
                    fmt=fmt, template=filename, float_output=float_output, overwrite=overwrite,
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
    from .checkpoint import load_checkpoint

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


@app.command(epilog="Example: stems train configs/default.yaml --set train.steps=500 --out runs/try1   |   stems train --resume runs/try1")
def train(
    config: Optional[Path] = typer.Argument(None, help="YAML config (configs/*.yaml); defaults in stems/config.py."),
    overrides: list[str] = typer.Option([], "--set", help="Override any key: --set train.lr=1e-3 --set model.widths=[8,16,32]."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory from its last save."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: runs/<config name>)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Train a model; the best checkpoint by validation SDR is written into the run directory."""
    from .config import ConfigError
    from .train import resolve_run
    from .train import train as run_training

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


@app.command(epilog="Example: stems evaluate --musdb ../shared/data/musdb18-7s --split valid --jobs 2 --markdown valid.md --chart valid.png")
def evaluate(
    musdb_root: Optional[Path] = typer.Option(None, "--musdb", help="MUSDB18 root (train/ and test/ folders of .stem.mp4)."),
    subset: str = typer.Option("train", "--subset", help="MUSDB subset: train or test."),
    split: Optional[str] = typer.Option("valid", "--split", help="With --subset train: train or valid."),
    is_wav: bool = typer.Option(False, "--is-wav", help="MUSDB18 in its wav layout."),
    stems_dir: Optional[Path] = typer.Option(None, "--stems-dir", help="References as <DIR>/<song>/{drums,bass,other,vocals}.*"),
    estimates: Optional[Path] = typer.Option(None, "--estimates", help="Also score another system's outputs <DIR>/<track>/<stem>.wav."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint file or registry name (default: the shipped model)."),
    masks: Optional[str] = typer.Option(None, "--mask", help="Mask kinds to score for the model, comma-separated (default soft,binary; none when only --oracle is given); '' for none."),
    oracles: Optional[str] = typer.Option(None, "--oracle", help="Baselines, comma-separated: mix, ibm, argmax, irm (default all); '' for none."),
    jobs: int = typer.Option(1, "--jobs", help="Tracks scored in parallel processes."),
    cache_dir: Path = typer.Option(Path(".cache/stems-eval"), "--cache", help="Per-track score cache: an interrupted run resumes."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summary and every track's scores as JSON."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the summary table as markdown."),
    chart: Optional[Path] = typer.Option(None, "--chart", help="Write a PNG bar chart of per-stem SDR."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Track name: write <TRACK>.masks.png (mix, predicted and oracle masks)."),
) -> None:
    """Per-stem SDR (BSSEval v4 over 1-s frames; median over frames, then over tracks, as SiSEC
    2018) of the model, other systems' estimates and oracle baselines, on the same tracks."""
    from rich.progress import MofNCompleteColumn

    from .config import STFTConfig
    from .evaluate import ORACLES, estimates_reader, evaluate_systems, oracle_estimates, reference_tracks, summary_table
    from .report import bar_chart, markdown_table
    from .separator import Separator

    if masks is None:
        masks = "" if oracles is not None and estimates is None else "soft,binary"
    mask_kinds = [m for m in masks.split(",") if m]
    oracle_kinds = [o for o in (",".join(ORACLES) if oracles is None else oracles).split(",") if o]
    for kind in mask_kinds:
        if kind not in MASK_KINDS:
            _fail(f"--mask {kind}: choose from {', '.join(MASK_KINDS)}", 2)
    for kind in oracle_kinds:
        if kind not in ORACLES:
            _fail(f"--oracle {kind}: choose from {', '.join(ORACLES)}", 2)
    try:
        tracks = reference_tracks(musdb_root, subset, split, is_wav, stems_dir, Path(".cache/stems-data"))
        separator = Separator.from_checkpoint(checkpoint) if mask_kinds or plot else None
    except StemsError as error:
        _fail(str(error))
    names = ("drums", "bass", "other", "vocals")
    systems, cache_keys = {}, {}
    for kind in mask_kinds:
        label = f"stems {kind}"
        systems[label] = lambda track, refs, kind=kind: separator.separate(refs.sum(axis=0), 44100, mask=kind)
        cache_keys[label] = f"weights-{separator.card['weights_sha256'][:16]}-{kind}"
    if estimates is not None:
        systems[f"estimates {estimates.name}"] = estimates_reader(estimates, names)
    for kind in oracle_kinds:
        systems["mixture" if kind == "mix" else f"oracle {kind.upper()}"] = \
            lambda track, refs, kind=kind: oracle_estimates(refs, names, kind, STFTConfig())
    where = f"{'MUSDB18 ' + subset + ('/' + split if split and subset == 'train' else '') if musdb_root else stems_dir}"
    title = f"SDR (dB), BSSEval v4, median over 1-s frames then over {len(tracks)} tracks of {where}" + (
        f"; model {Path(separator.card['path']).name}" if mask_kinds else "")
    if systems:
        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("score", total=len(tracks) * len(systems))
            try:
                results = evaluate_systems(tracks, systems, names, cache_dir, jobs, lambda: progress.advance(task),
                                           cache_keys)
            except StemsError as error:
                _fail(str(error))
        summary = summary_table(results, names)
        table = Table(title=title)
        table.add_column("system")
        for column in (*names, "mean"):
            table.add_column(column, justify="right")
        for system, row in summary.items():
            table.add_row(system, *(f"{row[c]:.2f}" for c in (*names, "mean")))
        Console().print(table)
        ibm = summary.get("oracle IBM")
        for system, row in summary.items():
            if ibm and not system.startswith(("oracle", "mixture")):
                Console().print(f"{system}: mean SDR {row['mean']:.2f} dB = {100 * row['mean'] / ibm['mean']:.0f}% of the oracle IBM1 mean")
        if json_out is not None:
            json_out.write_text(json.dumps({"summary": summary, "tracks": results}, indent=1))
        if markdown is not None:
            markdown.write_text(markdown_table(summary, names, title))
        if chart is not None:
            bar_chart(summary, names, chart, title)
    if plot is not None:
        _plot_track(plot, tracks, separator, mask_kinds[0] if mask_kinds else "soft")


def _plot_track(name: str, tracks, separator, mask: str) -> None:
    import torch

    from . import spectral
    from .evaluate import oracle_masks
    from .masks import inference_masks
    from .report import mask_plot

    found = dict(tracks).get(name)
    if found is None:
        _fail(f"--plot {name}: no such track (tracks: {', '.join(t for t, _ in tracks)})")
    stems_spec = spectral.stft(torch.from_numpy(found), separator.stft)
    mix_spec = stems_spec.sum(dim=0)
    with torch.inference_mode():
        logits = separator.model(separator.model.pad(mix_spec.abs())[None])[0]
    predicted = inference_masks(logits, mask)[:, 0].numpy()
    oracle = oracle_masks(stems_spec, "argmax")[:, 0].numpy()
    path = Path(f"{name}.masks.png")
    mask_plot(mix_spec[0].abs().numpy(), predicted, oracle, separator.sources, separator.sample_rate,
              separator.stft.hop_length, path, f"{name}: {mask} masks of {Path(separator.card['path']).name} vs oracle argmax")
    console.print(f"wrote {path}", highlight=False)


@app.command(epilog="Examples: stems stream song.mp3 --record out/ --gains vocals=0   |   "
                     "stems stream --input-device 2 --output-device 3 --play vocals   |   stems stream --list-devices")
def stream(
    source: Optional[Path] = typer.Argument(None, help="Audio file to stream (or use --input-device)."),
    input_device: Optional[int] = typer.Option(None, "--input-device", help="Separate live input from this device."),
    output_device: Optional[int] = typer.Option(None, "--output-device", help="Play the remix on this device."),
    play: Optional[str] = typer.Option(None, "--play", help="Stems to hear, e.g. 'vocals' (acapella); the rest are muted."),
    gains: Optional[str] = typer.Option(None, "--gains", help="Gain per stem, e.g. 'vocals=0' (karaoke) or 'drums=0.5,bass=1.5'."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write every stem (and the remix) into this folder."),
    block_ms: float = typer.Option(20.0, "--block-ms", help="Block size in milliseconds."),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--fast", help="Pace a file at real time (default when playing)."),
    mask: Optional[str] = typer.Option(None, "--mask", help="binary or soft (default: the checkpoint's better one)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint (e.g. the low-latency one)."),
    list_devices: bool = typer.Option(False, "--list-devices", help="List audio devices and exit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing recordings."),
) -> None:
    """Separate as audio arrives: acquire -> process -> reconstruct -> play/record, one thread each.

    File recordings are latency-compensated: sample i of each stem is sample i of the input."""
    import threading

    from rich.live import Live

    from .audio import open_audio
    from .live import Player, Recorder, device_source, file_source, parse_gains, status_table
    from .live import list_devices as device_list
    from .separator import Separator, output_groups
    from .stream import StreamPipeline, latency_samples

    try:
        if list_devices:
            print(device_list())
            return
        if (source is None) == (input_device is None):
            _fail("give an audio file or --input-device N (not both)", 2)
        if record is None and output_device is None and input_device is None and not play and not gains:
            _fail("nothing to do: give --record DIR and/or --output-device N", 2)
        separator = Separator.from_checkpoint(checkpoint)
        names = list(separator.sources)
        stem_gains = parse_gains(gains, play, names)
        mask = mask or separator.default_mask
        rate = separator.sample_rate
        block = max(1, int(round(block_ms * rate / 1000)))
        if record is not None and not overwrite:
            existing = [record / f"{n}.wav" for n in [*names, "remix"] if (record / f"{n}.wav").exists()]
            if existing:
                _fail(f"{existing[0]}: output exists (use --overwrite to replace it)")
        with contextlib.ExitStack() as stack:
            stop = threading.Event()
            if source is not None:
                handle, info = stack.enter_context(open_audio(source, rate))
                channels = info.channels
                pace = realtime if realtime is not None else output_device is not None
                blocks = file_source(handle, info.frames, block, pace, rate)
            else:
                channels, pace = 2, True
                blocks = device_source(input_device, channels, block, rate, stop)
            sinks = []
            recorder = Recorder(record, names, channels, rate, stem_gains) if record is not None else None
            if recorder is not None:
                sinks.append(recorder)
            player = Player(output_device, channels, rate, stem_gains) if output_device is not None else None
            if player is not None:
                sinks.append(player)
                stack.callback(player.close)
            pipeline = StreamPipeline(separator, output_groups(separator.sources), mask, channels, blocks, sinks,
                                      live=pace)
            pipeline.stop = stop
            latency_ms = 1000 * (latency_samples(separator) + block) / rate
            interrupted = False
            try:
                with Live(status_table(pipeline.stats, stem_gains, block / rate, latency_ms), console=console,
                          refresh_per_second=10, transient=False) as display:
                    pipeline.start()
                    try:
                        while not pipeline.wait(0.1):
                            display.update(status_table(pipeline.stats, stem_gains, block / rate, latency_ms))
                    except KeyboardInterrupt:  # stop reading, drain what was read, keep complete files
                        interrupted = True
                        stop.set()
                        pipeline.wait()
                    display.update(status_table(pipeline.stats, stem_gains, block / rate, latency_ms))
            except BaseException:
                if recorder is not None:
                    recorder.abort()
                raise
            if recorder is not None:
                for path in recorder.close():
                    console.print(f"wrote {path}", highlight=False)
            stats = pipeline.stats
            console.print(f"{stats.blocks} blocks, dropped in {stats.dropped_in}, dropped out {stats.dropped_out}")
            if interrupted:
                raise typer.Exit(130)
    except StemsError as error:
        _fail(str(error))


dataset_app = typer.Typer(no_args_is_help=True, help="Build training data: mix <> stem pairs, aligned and normalised.")
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("build", epilog="Examples: stems dataset build --mix song.mp3 --vocals acapella.wav -o data/song   |   "
                                     "stems dataset build --csv songs.csv -o data/")
def dataset_build(
    out: Path = typer.Option(..., "-o", "--out", help="Song folder (single pair) or root folder (--csv)."),
    mix: Optional[Path] = typer.Option(None, "--mix", help="The mixture."),
    drums: Optional[Path] = typer.Option(None, "--drums"),
    bass: Optional[Path] = typer.Option(None, "--bass"),
    other: Optional[Path] = typer.Option(None, "--other"),
    vocals: Optional[Path] = typer.Option(None, "--vocals", help="e.g. an acapella of the song."),
    instrumental: Optional[Path] = typer.Option(None, "--instrumental", help="Everything but the vocals."),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Batch: columns song,mix,drums,bass,other,vocals,instrumental."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its dataset section sets the thresholds."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set dataset.min_residual_snr_db=15"),
) -> None:
    """Align stems to their mix (cross-correlation), match gains (least squares), derive what is
    missing (e.g. other = mix - the rest), check the residual and write <out>/{stem}.wav."""
    from .config import ConfigError, load_config
    from .dataset import BuildReport, build_from_csv, build_pair

    try:
        settings = load_config(config, overrides).dataset
    except ConfigError as error:
        _fail(str(error), 2)
    options = {"min_residual_snr_db": settings.min_residual_snr_db, "max_offset_s": settings.max_offset_s}
    given = {k: v for k, v in {"drums": drums, "bass": bass, "other": other, "vocals": vocals,
                               "instrumental": instrumental}.items() if v is not None}
    if (csv_file is None) == (mix is None):
        _fail("give either --mix with some stems, or --csv", 2)
    errors: list[tuple[str, str]] = []
    try:
        if csv_file is not None:
            reports, errors = build_from_csv(csv_file, out, **options)
        else:
            if not given:
                _fail("give at least one stem (--vocals, --drums, --bass, --other or --instrumental)", 2)
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
        console.print(f"[red]error:[/red] {song}: {message}", highlight=False)
    if errors:
        console.print(f"{len(errors)} of {len(errors) + len(reports)} songs rejected")
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - entry point
    app(prog_name="stems")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
