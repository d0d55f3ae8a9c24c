"""Mask engines: what runs the network for the separator and the stream, and how one is loaded.

An engine maps mix magnitudes to mask logits, offline over a range of frames or streaming with a
state that it hands back (the time caches of `stems.model.TimeCaches`). Two implement it: the
ONNX Runtime engine here (numpy in and out, no torch: what `stems separate` and `stems stream`
ship with) and the torch engine of `stems.torch_engine` (training, validation, `--runtime torch`).
`load_engines` picks one by the model file's suffix through `ENGINES`, one per member for an
ensemble (several models, each with its own STFT, whose stems the separator averages).
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import ensemble, registry
from .config import STFTConfig
from .errors import MissingExtra, StemsError


class MaskEngine(Protocol):
    """The network's interface to the inference pipeline.

    Attributes:
        card: the model's card (sources, STFT, training, metrics, "path", "sha256").
        stft: its STFT settings.
        sources: the stems it predicts, in output order.
        audio_channels: channels it takes (mono input is fed twice).
        n_bins: STFT bins.
        past, lookahead: input frames before and after a frame that its mask depends on.
    """

    card: dict[str, Any]
    stft: STFTConfig
    sources: tuple[str, ...]
    audio_channels: int
    n_bins: int
    past: int
    lookahead: int

    def logits(self, mix_mag: np.ndarray) -> np.ndarray:
        """(channels, bins, frames) magnitudes, frames >= past + lookahead + 1 -> (sources,
        channels, bins, frames - past - lookahead) float32 logits; output j is input frame j + past."""

    def zero_state(self) -> list:
        """A streaming state of the right shapes, all zeros."""

    def step(self, mix_mag: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """Streaming: (channels, bins, n) new frames -> ((sources, channels, bins, n) logits of the
        frames `lookahead` before each new one, the next state)."""


def window_frames(engine: MaskEngine) -> int:
    return engine.past + engine.lookahead + 1


def silent_state(engine: MaskEngine) -> list:
    """The streaming state after an endless run of silent (zero-magnitude) frames, as the offline
    pipeline sees before a signal: zeros, then one window of silence pushed through (every cache
    then holds what silence makes of it, whatever it held before)."""
    silence = np.zeros((engine.audio_channels, engine.n_bins, window_frames(engine)), dtype=np.float32)
    return engine.step(silence, engine.zero_state())[1]


class OnnxEngine:
    """A model exported by `stems.export` run by ONNX Runtime.

    The graph takes `mix_mag` (1, channels, bins, frames) and one cache per time-valid layer,
    and returns `logits` and the next caches; caches of zero frames give the offline forward.

    Args:
        path: the .onnx file (checked by `registry.verify`).
        threads: intra-op threads (None: one per core but one, which the separator's reading,
            transforms and writing use beside the network; every core for a bag of several
            networks, whose network time outweighs the rest).
        device: "cpu", or "cuda" through ONNX Runtime's CUDA provider where it is installed.
    """

    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu"):
        import onnxruntime

        digest = registry.verify(path)
        cores = os.cpu_count() or 2
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise StemsError(f"{path}: --device cuda needs onnxruntime-gpu (or --runtime torch with a CUDA torch)")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = _session(path, threads or max(1, cores - 1), providers)
            card = json.loads(self.session.get_modelmeta().custom_metadata_map["stems_card"])
            if threads is None and card.get("members", 1) > 1 and cores > 1:
                # A bag's network outweighs the reconstruction beside it: it takes every core.
                self.session = _session(path, cores, providers)
        except Exception as error:  # onnxruntime raises its own types for foreign or broken files
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise StemsError(f"{path}: not a readable stems ONNX model ({first[:160]})") from None
        self.card = card | {"path": str(path), "sha256": digest}
        self.stft = STFTConfig(**card["stft"])
        self.sources = tuple(card["sources"])
        self.audio_channels = card["audio_channels"]
        self.n_bins = self.stft.n_bins
        self.past, self.lookahead = card["past"], card["lookahead"]
        self.state_names = [i.name for i in self.session.get_inputs()[1:]]
        self.state_shapes = [tuple(shape) for shape in card["state_shapes"]]
        self.empty = [np.zeros((*shape[:-1], 0), dtype=np.float32) for shape in self.state_shapes]

    def _run(self, mix_mag: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        feed = {"mix_mag": np.ascontiguousarray(mix_mag[None], dtype=np.float32)}
        feed.update(zip(self.state_names, state))
        logits, *state = self.session.run(None, feed)
        return logits[0], state

    def logits(self, mix_mag: np.ndarray) -> np.ndarray:
        return self._run(mix_mag, self.empty)[0]

    def zero_state(self) -> list:
        return [np.zeros(shape, dtype=np.float32) for shape in self.state_shapes]

    def step(self, mix_mag: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        return self._run(mix_mag, state)


def _session(path: Path, threads: int, providers: list[str]):
    """An ONNX Runtime session with `threads` intra-op threads. Where they take every core, they
    do not spin between operators: spinning would take the core the separator's reconstruction
    and writing run on (measured: the quality bag 2.1 s a 3-minute song without spinning, 2.7 s
    with, 2.4 s on one thread)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    if threads >= (os.cpu_count() or 2):
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


ENGINES = {"onnx": "stems.engine:OnnxEngine", "torch": "stems.torch_engine:TorchEngine.from_file"}


def load_engines(name_or_path: str | Path | None = None, runtime: str | None = None, threads: int | None = None,
                 device: str = "cpu") -> tuple[list[MaskEngine], dict[str, Any]]:
    """A registry name ("default" when None) or a model file -> (its engines, its card).

    A model file gives one engine and its card; an ensemble (`stems.ensemble`) one engine per
    member, in order, and the ensemble's card. `runtime` ("onnx" or "torch") picks a registered
    model's files; a file's suffix says which it is. CUDA takes the torch runtime unless "onnx"
    is asked for."""
    if runtime is None and device.startswith("cuda"):
        runtime = "torch"
    path = registry.resolve(name_or_path, runtime)
    known = (*registry.SUFFIXES.values(), ensemble.SUFFIX)
    if not path.exists() and path.suffix not in known:
        names = ", ".join(sorted(registry.registry()["models"])) or "none"
        raise StemsError(f"{name_or_path}: no such model (not a file, nor a registered name: {names})")
    if not ensemble.is_ensemble(path):
        engine = _load_file(path, threads, device)
        return [engine], engine.card
    files, card = ensemble.read_ensemble(path, runtime)
    if threads is None and len(files) > 1:
        threads = os.cpu_count() or 2  # the members' networks outweigh the reconstruction beside them
    engines = [_load_file(file, threads, device) for file in files]
    check_members(engines, path.name)
    return engines, ensemble.ensemble_card(card, [engine.card for engine in engines])


def check_members(engines: list[MaskEngine], what: str) -> None:
    """An ensemble's members must share sources, channels, sample rate and hop length (their
    chunks and frames line up); `what` names the ensemble in the error."""
    first = engines[0]
    for engine in engines[1:]:
        shared = (engine.sources, engine.audio_channels, engine.stft.sample_rate, engine.stft.hop_length)
        if shared != (first.sources, first.audio_channels, first.stft.sample_rate, first.stft.hop_length):
            raise StemsError(f"{what}: member {Path(engine.card['path']).name} differs from "
                             f"{Path(first.card['path']).name} in sources, channels, sample rate or hop length "
                             "(an ensemble's members must share them)")


def load_engine(name_or_path: str | Path | None = None, runtime: str | None = None, threads: int | None = None,
                device: str = "cpu") -> MaskEngine:
    """The engine of a single model (not an ensemble): see `load_engines`."""
    engines, card = load_engines(name_or_path, runtime, threads, device)
    if len(engines) > 1:
        raise StemsError(f"{card['path']}: an ensemble of {len(engines)} models, where one model is needed")
    return engines[0]


def _load_file(path: Path, threads: int | None, device: str) -> MaskEngine:
    kind = registry.runtime_of(path)
    module, _, attribute = ENGINES[kind].partition(":")
    try:
        factory: Any = importlib.import_module(module)
    except ImportError as error:
        if (missing := MissingExtra.module_of(error)) is None:
            raise
        raise MissingExtra(f"{path}: the {kind} runtime", missing) from None
    for part in attribute.split("."):
        factory = getattr(factory, part)
    return factory(path, threads=threads, device=device)
