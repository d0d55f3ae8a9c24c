"""`stems stream`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from ..errors import StemsError, check_interrupted
from ..masks import GATE_DB
from ..stemmp4 import STEM_MP4
from ..writers import FORMATS
from .common import Interrupted, app, console, fail as _fail


@app.command(epilog="Examples: stems stream song.mp3 --record out/ --gains vocals=0   |   "
                     "stems stream --input-device 2 --output-device 3 --play vocals   |   stems stream --list-devices")
def stream(
    source: Optional[Path] = typer.Argument(None, help="Audio file to stream (or use --input-device)."),
    input_device: Optional[int] = typer.Option(None, "--input-device", help="Separate live input from this device."),
    output_device: Optional[int] = typer.Option(None, "--output-device", help="Play the remix on this device."),
    play: Optional[str] = typer.Option(None, "--play", help="Stems to hear, e.g. 'vocals' (acapella); the rest are muted."),
    gains: Optional[str] = typer.Option(None, "--gains", help="Gain per stem, e.g. 'vocals=0' (karaoke) or 'drums=0.5,bass=1.5'."),
    record: Optional[Path] = typer.Option(None, "--record", help="Write every stem (and the remix) into this folder."),
    fmt: str = typer.Option("wav", "--format", help=f"Format of --record: {', '.join(FORMATS)} "
                            f"({STEM_MP4}: one file, stems.{STEM_MP4}, whose master stream is the remix)."),
    block_ms: float = typer.Option(20.0, "--block-ms", help="Block size in milliseconds."),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--fast", help="Pace a file at real time (default when playing)."),
    mask: Optional[str] = typer.Option(None, "--mask", help="binary or soft (default: the checkpoint's better one)."),
    gate_db: float = typer.Option(GATE_DB, "--gate-db", help="The silence gate's threshold in dB, as stems separate --gate-db; -inf: off."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "--model", help="Registry name (default, fast, quality, lowlatency) or model file, .onnx or .pt (default: the shipped low-latency model, else the default one)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="What runs a registered model: onnx (default) or torch."),
    list_devices: bool = typer.Option(False, "--list-devices", help="List audio devices and exit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing recordings."),
    threads: int = typer.Option(1, "--threads", help="Threads for the network (see docs/benchmarks.md for what 2 gives)."),
) -> None:
    """Separate as audio arrives: acquire -> process -> reconstruct -> play/record, one thread each.

    File recordings are latency-compensated: sample i of each stem is sample i of the input."""
    import threading

    from rich.live import Live

    from ..audio import open_audio
    from ..live import Player, Recorder, device_source, file_source, parse_gains, recording_paths, status_table
    from ..live import list_devices as device_list
    from ..reconstruct import output_groups
    from ..registry import registry
    from ..separator import Separator
    from ..stream import StreamPipeline, latency_samples

    try:
        if list_devices:
            print(device_list())
            return
        if (source is None) == (input_device is None):
            _fail("give an audio file or --input-device N (not both)", 2)
        if record is None and output_device is None and input_device is None and not play and not gains:
            _fail("nothing to do: give --record DIR and/or --output-device N", 2)
        if fmt not in FORMATS:
            _fail(f"--format {fmt}: choose from {', '.join(FORMATS)}", 2)
        if checkpoint is None and "lowlatency" in registry()["models"]:
            checkpoint = "lowlatency"
        try:
            separator = Separator.from_checkpoint(checkpoint, runtime, threads, gate_db=gate_db)
        except ValueError as error:  # a bad option value, named in the message
            _fail(str(error))
        names = list(separator.sources)
        stem_gains = parse_gains(gains, play, names)
        mask = mask or separator.default_mask
        rate = separator.sample_rate
        block = max(1, int(round(block_ms * rate / 1000)))
        if record is not None and not overwrite:
            existing = [path for path in recording_paths(record, names, fmt, remixed=True).values() if path.exists()]
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
            recorder = Recorder(record, names, channels, rate, stem_gains, fmt) if record is not None else None
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
            interrupted = 0  # the exit status a signal asks for
            try:
                with Live(status_table(pipeline.stats, stem_gains, block / rate, latency_ms), console=console,
                          refresh_per_second=10, transient=False) as display:
                    pipeline.start()
                    try:
                        while not pipeline.wait(0.1):
                            check_interrupted()
                            display.update(status_table(pipeline.stats, stem_gains, block / rate, latency_ms))
                    except (KeyboardInterrupt, Interrupted) as caught:  # stop reading, drain, keep complete files
                        interrupted = 128 + caught.signum if isinstance(caught, Interrupted) else 130
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
                raise typer.Exit(interrupted)
    except StemsError as error:
        _fail(str(error))
