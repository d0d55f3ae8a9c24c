"""Real-time streaming: acquire -> process -> reconstruct -> play/record, in threads.

The two stateful stages are plain classes, so the threads only move blocks between them:

- `FrameAnalyser` (process): takes samples as they arrive, computes each STFT frame once and
  feeds its magnitudes to the engine's streaming step (the network's time caches carried from
  block to block: each layer computes each frame once); a frame's mask is ready `lookahead`
  frames after the frame itself.
- `FrameSynthesiser` (reconstruct): overlap-adds masked frames through the shared
  `reconstruct` stage, keeping the frames still needed for the next samples, and emits every
  sample once all frames covering it are in.

Both do exactly what the offline separator does over the whole signal, so the stems equal the
offline stems (to float rounding), delayed by the algorithmic latency:
`lookahead * hop + n_fft` samples (plus the block). An ensemble's members each have their pair
(`StreamSeparation`), and their stems are averaged as every member completes them: the ensemble's
latency is its slowest member's.
"""

from __future__ import annotations

import queue
from collections import deque
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from . import spectral
from .audio import padded_slice
from .config import STFTConfig
from .engine import MaskEngine, silent_state
from .masks import inference_masks
from .reconstruct import reconstruct
from .separator import Separator

_HUGE = 1 << 62  # frame count used while the end of the stream is unknown


@dataclass
class Frames:
    """Masked-frame material for frames first .. first+F-1."""

    first: int
    spec: np.ndarray  # (channels, bins, F) complex mix STFT
    masks: np.ndarray  # (sources, channels, bins, F)
    total: int  # frames of the whole signal, or _HUGE while it is unknown


class FrameAnalyser:
    """STFT frames and masks of a signal that arrives in blocks.

    Args:
        engine: the model, with its STFT settings.
        channels: 1 or 2 (mono is fed to the model twice, as offline).
        mask: "binary" or "soft".
        gate_db: the silence gate (`stems.masks`).
    """

    def __init__(self, engine: MaskEngine, channels: int, mask: str, gate_db: float):
        self.stft, self.engine, self.mask, self.gate_db = engine.stft, engine, mask, gate_db
        self.channels = channels
        half = self.stft.n_fft // 2
        self.buffer = np.zeros((channels, half), dtype=np.float32)  # samples from buffer_start on
        self.buffer_start = -half
        self.received = 0
        self.next_frame = 0  # next STFT frame to compute
        # The state holds an endless silence before the signal (frames before it are silent, as
        # offline); the step's outputs trail its input by `lookahead` frames, so the first
        # `lookahead` outputs are of frames before the signal and are dropped.
        self.state = silent_state(self.engine)
        self.next_mask = -self.engine.lookahead  # frame of the engine's next output
        self.specs = np.zeros((2, self.stft.n_bins, 0), dtype=np.complex64)  # complex frames next_mask ..

    def push(self, block: np.ndarray) -> Frames | None:
        """Add (channels, n) samples; returns the frames whose masks became ready, if any."""
        self.buffer = np.concatenate([self.buffer, block.astype(np.float32, copy=False)], axis=1)
        self.received += block.shape[1]
        half, hop = self.stft.n_fft // 2, self.stft.hop_length
        ready = (self.received - half) // hop + 1 if self.received >= half else 0
        return self._advance(ready, _HUGE)

    def finish(self) -> Frames | None:
        """The end of the stream: the last frames (zero-padded past the end) and their masks."""
        total = spectral.n_frames(self.received, self.stft)
        half, hop = self.stft.n_fft // 2, self.stft.hop_length
        needed = (total - 1) * hop + half - (self.buffer_start + self.buffer.shape[1])
        if needed > 0:
            self.buffer = np.concatenate([self.buffer, np.zeros((self.channels, needed), np.float32)], axis=1)
        return self._advance(total, total)

    def _step(self, mix_mag: np.ndarray) -> np.ndarray:
        """The engine's logits for new frames, those of frames before the signal dropped."""
        logits, self.state = self.engine.step(mix_mag, self.state)
        early = max(0, -self.next_mask)
        self.next_mask += mix_mag.shape[-1]
        return logits[..., early:]

    def _advance(self, computable: int, total: int) -> Frames | None:
        hop, half = self.stft.hop_length, self.stft.n_fft // 2
        first = max(0, self.next_mask)
        new_logits = []
        if computable > self.next_frame:
            start, stop = spectral.frame_span(self.next_frame, computable, self.stft)
            samples = self.buffer[:, start - self.buffer_start: stop - self.buffer_start]
            if self.channels == 1:
                samples = np.broadcast_to(samples, (2, samples.shape[-1]))
            spec = spectral.stft_frames(samples, self.stft)
            self.specs = np.concatenate([self.specs, spec], axis=-1)
            new_logits.append(self._step(np.abs(spec)))
            self.next_frame = computable
            keep_from = self.next_frame * hop - half  # the next frame's first sample
            self.buffer = self.buffer[:, keep_from - self.buffer_start:]
            self.buffer_start = keep_from
        if total != _HUGE and self.engine.lookahead:  # past the end the model sees silent frames, as offline
            silence = np.zeros((self.engine.audio_channels, self.stft.n_bins, self.engine.lookahead), np.float32)
            new_logits.append(self._step(silence))
        logits = np.concatenate(new_logits, axis=-1) if new_logits else None
        if logits is None or logits.shape[-1] == 0:
            return None
        count = logits.shape[-1]
        spec = self.specs[..., :count]
        frames = Frames(first, spec, inference_masks(logits, self.mask, spec, self.gate_db), total)
        self.specs = self.specs[..., count:]
        return frames


class FrameSynthesiser:
    """Stems from masked frames, sample-exact with the offline overlap-add.

    Args:
        stft: the model's STFT settings.
        groups: output name -> source indices (see `reconstruct.output_groups`).
        channels: output channels (mono: the two model channels are averaged, as offline).
    """

    def __init__(self, stft: STFTConfig, groups: dict[str, tuple[int, ...]], channels: int):
        self.stft, self.groups, self.channels = stft, groups, channels
        self.reach = spectral.context_frames_needed(self.stft)
        self.held: Frames | None = None  # frames still needed for samples not yet emitted
        self.mix = np.zeros((channels, 0), dtype=np.float32)  # input samples from `emitted` on
        self.emitted = 0
        self.length: int | None = None

    def add_input(self, block: np.ndarray) -> None:
        """The mix samples, in order (the last stem is the mix minus the others)."""
        self.mix = np.concatenate([self.mix, block.astype(np.float32, copy=False)], axis=1)

    def push(self, frames: Frames, length: int | None = None) -> dict[str, np.ndarray]:
        """Add masked frames; returns {name: (channels, n)} for the samples now complete
        (`length`: the signal's length, given with the last frames)."""
        if self.held is not None:
            frames = Frames(self.held.first, np.concatenate([self.held.spec, frames.spec], -1),
                            np.concatenate([self.held.masks, frames.masks], -1), frames.total)
        hop = self.stft.hop_length
        last = frames.first + frames.spec.shape[-1]  # frames known: .. last-1
        if length is None:
            stop = (last - self.reach) * hop  # samples every covering frame of which is known
        else:
            stop = length
        start = self.emitted
        if stop <= start:
            self.held = frames
            return {}
        mix_spec = frames.spec
        mix_samples = self._mix_span(frames, mix_spec.shape[-1])
        waves, first = reconstruct(mix_spec, frames.masks, self.groups, frames.first, frames.total, self.stft,
                                   mix_samples=mix_samples)
        out = {}
        for name, wave in waves.items():
            piece = wave[:, start - first: stop - first]
            out[name] = piece.mean(axis=0, keepdims=True) if self.channels == 1 else piece
        self.emitted = stop
        self.mix = self.mix[:, stop - start:]
        drop = max(0, stop // hop - self.reach + 1 - frames.first)  # frames no later sample needs
        self.held = Frames(frames.first + drop, frames.spec[..., drop:], frames.masks[..., drop:], frames.total)
        return out

    def _mix_span(self, frames: Frames, count: int) -> np.ndarray:
        """The mix over the samples the overlap-add of `frames` returns (zeros outside)."""
        hop, n_fft = self.stft.hop_length, self.stft.n_fft
        start = frames.first * hop - n_fft // 2
        length = (count - 1) * hop + n_fft
        out = padded_slice(self.mix, start - self.emitted, start - self.emitted + length)
        return np.broadcast_to(out, (2, length)) if self.channels == 1 else out


class StreamSeparation:
    """A separator's streaming stages: an analyser and a synthesiser per engine, and the average
    of the engines' stems over the samples every engine has completed.

    Args:
        separator: its engines and silence gate.
        groups, channels, mask: as for `FrameSynthesiser` and `FrameAnalyser`.
    """

    def __init__(self, separator: Separator, groups: dict[str, tuple[int, ...]], channels: int, mask: str):
        self.analysers = [FrameAnalyser(engine, channels, mask, separator.gate_db) for engine in separator.engines]
        self.synthesisers = [FrameSynthesiser(engine.stft, groups, channels) for engine in separator.engines]
        self.pending: list[dict[str, np.ndarray]] = [{} for _ in separator.engines]  # completed, not yet averaged

    @property
    def received(self) -> int:
        return self.analysers[0].received

    def analyse(self, block: np.ndarray) -> list[Frames | None]:
        """(channels, n) samples in; each engine's frames whose masks became ready."""
        return [analyser.push(block) for analyser in self.analysers]

    def finish(self) -> list[Frames | None]:
        """The end of the stream: each engine's last frames."""
        return [analyser.finish() for analyser in self.analysers]

    def add_input(self, block: np.ndarray) -> None:
        for synthesiser in self.synthesisers:
            synthesiser.add_input(block)

    def synthesise(self, frames: list[Frames | None], length: int | None = None) -> dict[str, np.ndarray]:
        """Each engine's new frames (`length`: the signal's length, with the last) -> {name:
        (channels, n)}, the engines' mean over the samples all of them now have."""
        outs = [synthesiser.push(f, length) if f is not None else {} for synthesiser, f in zip(self.synthesisers, frames)]
        if len(outs) == 1:
            return outs[0]
        for held, out in zip(self.pending, outs):
            for name, piece in out.items():
                held[name] = np.concatenate([held[name], piece], axis=-1) if name in held else piece
        if not all(self.pending):
            return {}
        ready = min(next(iter(held.values())).shape[-1] for held in self.pending)
        if ready == 0:
            return {}
        names = list(self.pending[0])
        averaged = {name: sum(held[name][:, :ready] for held in self.pending) / len(self.pending) for name in names}
        for held in self.pending:
            for name in names:
                held[name] = held[name][:, ready:]
        return averaged


def latency_samples(separator: Separator) -> int:
    """Algorithmic latency: a sample is out once, for every engine, the frame `lookahead` frames
    after the last frame covering it has been read in full."""
    return max(engine.lookahead * engine.stft.hop_length + engine.stft.n_fft for engine in separator.engines)


def stream_blocks(separator: Separator, blocks: Iterator[np.ndarray], channels: int,
                  groups: dict[str, tuple[int, ...]], mask: str) -> Iterator[dict[str, np.ndarray]]:
    """Single-threaded streaming: (channels, n) blocks in, {stem: (channels, k)} blocks out."""
    stages = StreamSeparation(separator, groups, channels, mask)
    for block in blocks:
        stages.add_input(block)
        out = stages.synthesise(stages.analyse(block))
        if out:
            yield out
    out = stages.synthesise(stages.finish(), length=stages.received)
    if out:
        yield out


@dataclass
class StreamStats:
    blocks: int = 0
    dropped_in: int = 0  # input blocks lost because processing fell behind (live input)
    dropped_out: int = 0  # output blocks lost because the player fell behind
    block_seconds: deque = field(default_factory=lambda: deque(maxlen=100_000))  # processing time per block (bounded)
    levels: dict[str, float] = field(default_factory=dict)  # last block's RMS per stem
    queue_depths: dict[str, int] = field(default_factory=dict)


class StreamPipeline:
    """acquire -> process -> reconstruct -> output, one thread each, joined by bounded queues.

    Args:
        separator, groups, mask, channels: as for `stream_blocks`.
        source: yields (channels, n) blocks (a file reader or a device callback's queue).
        sinks: called with each {stem: (channels, k)} block, in order (file writers, a player).
        live: a live source cannot wait: when the process queue is full its block is dropped
            (and replaced by silence, so time stays aligned) and counted; a file source waits.
        queue_blocks: bound of each queue; memory never grows past it.
    """

    def __init__(self, separator: Separator, groups: dict[str, tuple[int, ...]], mask: str, channels: int,
                 source: Iterator[np.ndarray], sinks: list[Callable[[dict[str, np.ndarray]], None]],
                 live: bool = False, queue_blocks: int = 16):
        self.stages = StreamSeparation(separator, groups, channels, mask)
        self.source, self.sinks, self.live = source, sinks, live
        self.to_process: queue.Queue = queue.Queue(queue_blocks)
        self.to_reconstruct: queue.Queue = queue.Queue(queue_blocks)
        self.to_output: queue.Queue = queue.Queue(queue_blocks)
        self.stop = threading.Event()
        self.stats = StreamStats()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._guard(f), name=f.__name__, daemon=True)
                        for f in (self._acquire, self._process, self._reconstruct, self._output)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for every stage to end; True when they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if not self.running() and self.errors:
            raise self.errors[0]
        return not self.running()

    def run(self) -> StreamStats:
        """Run to the end of the source and drain every stage; on Ctrl-C stop reading, drain
        what was read, and re-raise."""
        self.start()
        try:
            while not self.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.stop.set()
            self.wait()
            raise
        return self.stats

    def depths(self) -> dict[str, int]:
        return {"process": self.to_process.qsize(), "reconstruct": self.to_reconstruct.qsize(),
                "output": self.to_output.qsize()}

    def _guard(self, stage: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                stage()
            except BaseException as error:  # a failing stage stops the others, the error surfaces in run()
                self.errors.append(error)
                self.stop.set()
                for q in (self.to_process, self.to_reconstruct, self.to_output):
                    _put_end(q)
        return run

    def _acquire(self) -> None:
        for block in self.source:
            if self.stop.is_set():
                break
            if self.live:
                try:
                    self.to_process.put_nowait(block)
                except queue.Full:
                    self.stats.dropped_in += 1
                    self.to_process.put(np.zeros_like(block))  # keep time: silence for the lost block
            else:
                self.to_process.put(block)
        self.to_process.put(None)

    def _process(self) -> None:
        while (block := self.to_process.get()) is not None:
            started = time.perf_counter()
            frames = self.stages.analyse(block)
            self.stats.block_seconds.append(time.perf_counter() - started)
            self.stats.blocks += 1
            self.to_reconstruct.put((block, frames))
        self.to_reconstruct.put((None, self.stages.finish()))
        self.to_reconstruct.put(None)

    def _reconstruct(self) -> None:
        while (item := self.to_reconstruct.get()) is not None:
            block, frames = item
            if block is not None:
                self.stages.add_input(block)
            out = self.stages.synthesise(frames, length=None if block is not None else self.stages.received)
            if out:
                if self.live:
                    try:
                        self.to_output.put_nowait(out)
                    except queue.Full:
                        self.stats.dropped_out += 1
                else:
                    self.to_output.put(out)
        self.to_output.put(None)

    def _output(self) -> None:
        while (out := self.to_output.get()) is not None:
            self.stats.levels = {name: float(np.sqrt(np.mean(block**2))) if block.size else 0.0 for name, block in out.items()}
            self.stats.queue_depths = self.depths()
            for sink in self.sinks:
                sink(out)


def _put_end(q: queue.Queue) -> None:
    try:
        q.put_nowait(None)
    except queue.Full:
        pass
