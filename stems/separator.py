"""The offline pipeline: audio -> STFT -> masks -> reconstruction, chunk by chunk.

A chunk covers output samples [a*hop, b*hop). Its overlap-add needs the masks of frames
[a-m, b+m) (m frames whose windows reach into the range), and the network needs `context` more
frames on each side, so the chunk reads exactly the samples those frames cover (zeros outside the
signal). Because the network's convolutions are valid in time and the STFT frames and overlap-add
are computed as for the whole signal, every chunk's output equals the one-pass output: memory is
bounded by the chunk, not by the file. (With a low-latency model the context is `past` frames
before and `lookahead` after instead of `context` on each side.) With `shifts`, each chunk is
separated once per delay of the signal (the frame grid moved by a fraction of a hop) and averaged.
An ensemble's members (`stems.ensemble`) each separate the chunk with their own STFT and the
stems are averaged: they share the hop, so their chunks cover the same samples.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import spectral
from .audio import padded_slice, resample
from .engine import MaskEngine, load_engines
from .masks import GATE_DB, inference_masks
from .reconstruct import covers_all_sources, output_groups, reconstruct

ReadFn = Callable[[int, int], np.ndarray]  # (start, stop) -> (channels, stop - start), zeros outside


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """Their mean; a single array is returned as it is, not copied."""
    return arrays[0] if len(arrays) == 1 else sum(arrays) / len(arrays)


@dataclass(frozen=True)
class _Analysis:
    """One chunk's frames, ready for reconstruction."""

    samples: np.ndarray  # (2, n) the mix from sample span_start on
    span_start: int
    spec: np.ndarray  # (2, bins, F) complex mix STFT of frames first_frame .. first_frame+F-1
    first_frame: int
    total: int  # frames of the whole (delayed) signal
    logits: np.ndarray  # (sources, 2, bins, F)


@dataclass(frozen=True)
class Chunk:
    start: int  # first output sample of the chunk
    stems: dict[str, np.ndarray]  # name -> (channels, samples) float32


class Separator:
    """Splits audio into stems with a mask engine (`stems.engine`), or several (an ensemble).

    Args:
        engines: runs the network (ONNX Runtime or torch); its card gives the STFT and sources.
            Several engines (an ensemble's members: the same sources, sample rate and hop, STFT
            sizes free) each separate the signal and their stems are averaged.
        chunk_frames: output frames per chunk: bounds memory (see scripts/bench.py for the size).
        shifts: separate the signal this many times, delayed by k·hop/shifts samples for k = 0 ..
            shifts-1 (every placement of the STFT frame grid differs), and average (Demucs'
            "shift trick"); costs `shifts` times the work.
        gate_db: the silence gate (`stems.masks`): a stem whose estimate holds less than this
            share of a frame's energy gets nothing there; -inf turns it off.
        card: the model's card (default: the first engine's); an ensemble's has its own.
    """

    def __init__(self, engines: MaskEngine | Sequence[MaskEngine], chunk_frames: int = 256, shifts: int = 1,
                 gate_db: float = GATE_DB, card: dict[str, Any] | None = None):
        self.engines = tuple(engines) if isinstance(engines, (list, tuple)) else (engines,)
        if not self.engines:
            raise ValueError("a separator needs at least one engine")
        first = self.engines[0]
        for engine in self.engines[1:]:
            if (engine.sources, engine.stft.sample_rate, engine.stft.hop_length) != (
                    first.sources, first.stft.sample_rate, first.stft.hop_length):
                raise ValueError("an ensemble's engines must share sources, sample rate and hop length")
        self.gate_db = gate_db
        self.card = card if card is not None else first.card
        self.hop_length = first.stft.hop_length
        self.chunk_frames = chunk_frames
        self.shifts = shifts
        if not 1 <= self.shifts <= self.hop_length:
            raise ValueError(f"shifts must be between 1 and the hop length ({self.hop_length}), got {self.shifts}")
        if gate_db != gate_db:  # NaN would gate nothing, silently
            raise ValueError(f"gate_db must be a level in dB or -inf (off), got {gate_db}")

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None = None, runtime: str | None = None,
                        threads: int | None = None, device: str = "cpu", **kwargs) -> "Separator":
        """The shipped default model (None or "default"), another registry name, or a model file
        (.onnx, .pt for the torch runtime, or an ensemble's .json)."""
        engines, card = load_engines(checkpoint, runtime, threads, device)
        return cls(engines, card=card, **kwargs)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.engines[0].sources

    @property
    def default_mask(self) -> str:
        """The mask kind that scored better on validation (recorded in the card), else soft."""
        return self.card.get("default_mask", "soft")

    @property
    def sample_rate(self) -> int:
        return self.engines[0].stft.sample_rate

    def iter_chunks(self, read: ReadFn, n_samples: int, channels: int, groups: dict[str, tuple[int, ...]],
                    mask: str = "binary") -> Iterator[Chunk]:
        """Separate a signal read through `read`, chunk by chunk, in order.

        Args:
            read: returns samples [start, stop) as (channels, n) float32, zeros outside the signal.
            n_samples: length of the signal.
            channels: 1 (mono: the model sees it twice, the stems are averaged back) or 2.
        Yields:
            Chunks whose stems, concatenated, are (channels, n_samples) each: the mean over the
            engines and the separator's `shifts` (the signal delayed by k samples, separated,
            advanced again).
        """
        hop = self.hop_length
        delays = [round(i * hop / self.shifts) for i in range(self.shifts)]
        count = -(-n_samples // hop)
        jobs = [(a, min(a + self.chunk_frames, count), delay) for a in range(0, count, self.chunk_frames) for delay in delays]
        # The next chunk is read, transformed and run through the network in a worker thread while
        # this one is reconstructed and written: the stages use both cores of a 2-core machine.
        with ThreadPoolExecutor(max_workers=1) as worker:
            ahead = worker.submit(self._analyse, read, n_samples, channels, *jobs[0]) if jobs else None
            runs = []
            for i, (a, b, delay) in enumerate(jobs):
                analyses = ahead.result()
                if i + 1 < len(jobs):
                    ahead = worker.submit(self._analyse, read, n_samples, channels, *jobs[i + 1])
                runs += [self._synthesise(engine, analysis, n_samples, channels, groups, mask, a, b, delay)
                         for engine, analysis in zip(self.engines, analyses)]
                if len(runs) == len(delays) * len(self.engines):
                    yield Chunk(a * hop, {name: _mean([run[name] for run in runs]) for name in groups})
                    runs = []

    def _analyse(self, read: ReadFn, n_samples: int, channels: int, a: int, b: int, delay: int) -> list["_Analysis"]:
        """Read, transform and run each engine's network over the frames that output samples
        [a*hop, min(b*hop, n_samples)) of the signal delayed by `delay` < hop samples need: frames
        a-m .. b+m-1 (one more when delayed) cover those samples + delay, and the network needs its
        window around them. The samples every engine needs are read once."""
        spans = []
        for engine in self.engines:
            total = spectral.n_frames(n_samples + delay, engine.stft)
            m = spectral.context_frames_needed(engine.stft)
            lo, hi = a - m - engine.past, b + m + engine.lookahead + (delay > 0)
            spans.append((total, lo, hi, *spectral.frame_span(lo, hi, engine.stft)))
        start, stop = min(span[3] for span in spans), max(span[4] for span in spans)
        samples = read(start - delay, stop - delay)
        if channels == 1:
            samples = np.broadcast_to(samples, (2, samples.shape[-1]))
        analyses = []
        for engine, (total, lo, hi, span_start, span_stop) in zip(self.engines, spans):
            mine = samples[:, span_start - start: span_stop - start]
            spec = spectral.stft_frames(mine, engine.stft)  # (C, F, hi - lo)
            mag = np.abs(spec)
            inside = slice(max(0, -lo), max(0, min(hi - lo, total - lo)))
            mag[..., : inside.start] = 0.0  # frames outside the signal are silent, as for the whole signal
            mag[..., inside.stop:] = 0.0
            logits = engine.logits(mag)  # (S, C, F, frames lo+past .. hi-ahead-1)
            past, ahead = engine.past, engine.lookahead
            analyses.append(_Analysis(mine, span_start, spec[..., past: hi - lo - ahead], lo + past, total, logits))
        return analyses

    def _synthesise(self, engine: MaskEngine, analysis: "_Analysis", n_samples: int, channels: int,
                    groups: dict[str, tuple[int, ...]], mask: str, a: int, b: int, delay: int) -> dict[str, np.ndarray]:
        """{name: (channels, samples)} of one engine for output samples [a*hop, min(b*hop, n_samples))."""
        hop, n_fft = engine.stft.hop_length, engine.stft.n_fft
        out_start, out_stop = a * hop, min(b * hop, n_samples)
        offset = analysis.first_frame * hop - n_fft // 2 - analysis.span_start
        mix = analysis.samples[:, offset: offset + (analysis.spec.shape[-1] - 1) * hop + n_fft]
        masks = inference_masks(analysis.logits, mask, analysis.spec, self.gate_db)
        waves, first = reconstruct(analysis.spec, masks, groups, analysis.first_frame, analysis.total,
                                   engine.stft, mix_samples=mix)
        stems = {}
        for name, wave in waves.items():
            piece = wave[:, out_start + delay - first: out_stop + delay - first]
            stems[name] = piece.mean(axis=0, keepdims=True) if channels == 1 else piece
        return stems

    def separate(self, audio: np.ndarray, sample_rate: int, stems: tuple[str, ...] | None = None,
                 two_stems: str | None = None, mask: str | None = None) -> dict[str, np.ndarray]:
        """Separate an in-memory signal.

        Args:
            audio: (channels, samples) or (samples,) float, channels 1 or 2.
            sample_rate: its rate; other rates than the model's are resampled (soxr) and back.
            mask: "soft" or "binary"; default: the checkpoint's `default_mask`.
        Returns:
            {stem: array shaped like `audio`} float32.
        """
        audio = np.asarray(audio, dtype=np.float32)
        flat = audio.ndim == 1
        audio = audio[None] if flat else audio
        if audio.ndim != 2 or audio.shape[0] not in (1, 2):
            raise ValueError(f"audio must be (channels, samples) with 1 or 2 channels, got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise ValueError("audio contains NaN or infinite samples")
        length = audio.shape[-1]
        original = audio
        if sample_rate != self.sample_rate:
            audio = resample(audio, sample_rate, self.sample_rate)
        n = audio.shape[-1]

        def read(start: int, stop: int) -> np.ndarray:
            return padded_slice(audio, start, stop)

        groups = output_groups(self.sources, stems, two_stems)
        mask = mask or self.default_mask
        pieces: dict[str, list[np.ndarray]] = {name: [] for name in groups}
        for chunk in self.iter_chunks(read, n, audio.shape[0], groups, mask):
            for name, piece in chunk.stems.items():
                pieces[name].append(piece)
        result = {name: np.concatenate(parts, axis=-1) for name, parts in pieces.items()}
        if sample_rate != self.sample_rate:
            names = list(result)
            partition = covers_all_sources(groups, len(self.sources))
            for name in names[:-1] if partition else names:
                wave = resample(result[name], self.sample_rate, sample_rate)
                result[name] = np.pad(wave, ((0, 0), (0, max(0, length - wave.shape[-1]))))[:, :length]
            if partition:  # the last stem is the rest of the original mix: the stems still add up to it
                result[names[-1]] = original - sum(result[n] for n in names[:-1])
        return {name: wave[0] if flat else wave for name, wave in result.items()}
