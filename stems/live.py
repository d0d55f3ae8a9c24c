"""The ends of a stream: block sources (a file paced at real time, an input device), sinks (stem
files, a gained remix to a file or an output device) and the live terminal display.

Audio devices go through sounddevice (PortAudio), an optional extra: `pip install .[realtime]`
and Debian's libportaudio2. Without it, file-to-file streaming still works.
"""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Iterator

import numpy as np
from rich.table import Table

from .audio import read_block
from .errors import StemsError
from .writers import output_format


def sounddevice_module():
    try:
        import sounddevice
    except (ImportError, OSError) as error:  # OSError: PortAudio library missing
        raise StemsError(f"audio devices need sounddevice and PortAudio: pip install '.[realtime]' and "
                         f"apt-get install libportaudio2 ({error})") from None
    return sounddevice


def list_devices() -> str:
    return str(sounddevice_module().query_devices())


def parse_gains(text: str | None, play: str | None, names: list[str]) -> dict[str, float]:
    """`--gains vocals=0,drums=1` or `--play vocals,bass` -> a gain per stem (default 1)."""
    if text and play:
        raise StemsError("--gains and --play cannot be used together")
    if play:
        chosen = [p.strip() for p in play.split(",") if p.strip()]
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise StemsError(f"--play: unknown stem(s) {', '.join(unknown)} (choose from {', '.join(names)})")
        return {name: 1.0 if name in chosen else 0.0 for name in names}
    gains = dict.fromkeys(names, 1.0)
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in gains:
            raise StemsError(f"--gains: unknown stem '{name}' (choose from {', '.join(names)})")
        try:
            gains[name] = float(value)
        except ValueError:
            raise StemsError(f"--gains: '{item}' must look like {name}=0.5") from None
    return gains


def remix(stems: dict[str, np.ndarray], gains: dict[str, float]) -> np.ndarray:
    return sum(gains[name] * block for name, block in stems.items())


def file_source(handle, frames: int, block: int, realtime: bool, sample_rate: int) -> Iterator[np.ndarray]:
    """Blocks of `block` samples from an open SoundFile; paced at real time when asked."""
    started = time.monotonic()
    for start in range(0, frames, block):
        if realtime:
            delay = started + start / sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield read_block(handle, start, min(start + block, frames))


def device_source(device: int, channels: int, block: int, sample_rate: int, stop) -> Iterator[np.ndarray]:
    """Blocks from an input device until `stop` is set (PortAudio's callback fills a queue)."""
    sd = sounddevice_module()
    arrived: queue.Queue = queue.Queue(64)

    def callback(data, _frames, _time, _status) -> None:
        try:
            arrived.put_nowait(data.T.copy())
        except queue.Full:
            pass

    with sd.InputStream(device=device, channels=channels, samplerate=sample_rate, blocksize=block,
                        dtype="float32", callback=callback):
        while not stop.is_set():
            try:
                yield arrived.get(timeout=0.2)
            except queue.Empty:
                continue


def recording_paths(directory: Path, names: list[str], fmt: str, remixed: bool) -> dict[str, Path]:
    """{file name: path} of what a Recorder writes in format `fmt`: DIR/<stem>.<fmt> per stem and
    DIR/remix.<fmt> when `remixed`; in a format whose one file holds every stream, DIR/stems.stem.mp4
    (the remix, or the sum of the stems, is its master stream)."""
    output = output_format(fmt)
    file_names = output.file_names(names) + (["remix"] if remixed and not output.mix else [])
    return {name: directory / f"{name}.{fmt}" for name in file_names}


class Recorder:
    """Writes every stem (and the gained remix, when gains are not all one) under `directory` in
    any format of `writers.FORMATS`, atomically through one Writer; `close` commits complete
    files, `abort` removes them."""

    def __init__(self, directory: Path, names: list[str], channels: int, sample_rate: int, gains: dict[str, float],
                 fmt: str = "wav"):
        self.gains = gains
        self.output = output_format(fmt)
        self.output.check(names, directory)
        self.remixed = any(g != 1.0 for g in gains.values())
        self.writer = self.output.open(recording_paths(directory, names, fmt, self.remixed), sample_rate, channels)

    def __call__(self, stems: dict[str, np.ndarray]) -> None:
        blocks = dict(stems)
        if self.output.mix:  # what is heard is the file's master stream
            blocks = {"mix": remix(stems, self.gains), **blocks}
        elif self.remixed:
            blocks["remix"] = remix(stems, self.gains)
        self.writer.write(blocks)

    def close(self) -> list[Path]:
        return list(dict.fromkeys(self.writer.commit().values()))

    def abort(self) -> None:
        self.writer.abort()


class Player:
    """Plays the gained remix on an output device; a full device buffer drops the block."""

    def __init__(self, device: int | None, channels: int, sample_rate: int, gains: dict[str, float]):
        sd = sounddevice_module()
        self.gains = gains
        self.stream = sd.OutputStream(device=device, channels=channels, samplerate=sample_rate, dtype="float32")
        self.stream.start()

    def __call__(self, stems: dict[str, np.ndarray]) -> None:
        self.stream.write(np.ascontiguousarray(np.clip(remix(stems, self.gains), -1, 1).T))

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


def status_table(stats, gains: dict[str, float], block_seconds: float, latency_ms: float) -> Table:
    """Level meters per stem, gains, block time, queue depths and dropouts."""
    table = Table(title=f"stems stream: algorithmic latency {latency_ms:.0f} ms", show_header=True)
    table.add_column("stem")
    table.add_column("level")
    table.add_column("gain", justify="right")
    for name, gain in gains.items():
        level = stats.levels.get(name, 0.0)
        db = 20 * np.log10(level + 1e-9)
        bars = int(max(0.0, min(1.0, (db + 60) / 60)) * 30)
        table.add_row(name, "█" * bars + "·" * (30 - bars) + f" {db:6.1f} dB", f"{gain:.2f}")
    recent = list(stats.block_seconds)[-200:]
    p99 = float(np.percentile(recent, 99)) if recent else 0.0
    table.caption = (f"blocks {stats.blocks}  p99 block time {1000 * p99:.1f} ms ({100 * p99 / block_seconds:.0f}% of a block)  "
                     f"queues {stats.queue_depths}  dropped in {stats.dropped_in} out {stats.dropped_out}")
    return table
