"""Export a torch network to the ONNX model that inference ships with, and register models
(one network's files, or an ensemble's file: `stems.ensemble`).

The graph is the network's one forward with its time caches as inputs and outputs (see
`stems.model.TimeCaches`), BatchNorm folded: `mix_mag` (1, channels, bins, frames) and `state<i>`
(1, ..., reach_i) in, `logits` and `next_state<i>` out. Caches of zero frames make it the
offline forward, caches of `reach` frames a streaming step. The model's card travels in the ONNX
metadata (`stems_card`), with the frames its window reaches back (`past`) and ahead (`lookahead`),
the networks it averages (`members`: 2 or more for a bag) and the shapes of the streaming caches
(`state_shapes`).
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .bag import MaskBag
from .config import STFTConfig
from .model import MaskNet, TimeCaches
from .registry import CHECKPOINT_DIR, ENSEMBLE, registry, sha256_of, write_registry

OPSET = 17


class _Graph(torch.nn.Module):
    """forward(mix_mag, *state) -> (logits, *next_state), the exported signature."""

    def __init__(self, model: MaskNet | MaskBag):
        super().__init__()
        self.model = model

    def forward(self, mix_mag: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        caches = TimeCaches(state)
        logits = self.model(mix_mag, caches)
        return (logits, *caches.outgoing)


def onnx_card(model: MaskNet | MaskBag, stft: STFTConfig, card: dict[str, Any],
              state_shapes: list[tuple[int, ...]]) -> dict[str, Any]:
    """What an ONNX engine needs to know beside the graph, with the checkpoint's card."""
    kept = {k: v for k, v in card.items() if k not in ("path", "sha256")}
    return kept | {"sources": list(model.sources), "audio_channels": model.config.audio_channels,
                   "stft": {"sample_rate": stft.sample_rate, "n_fft": stft.n_fft, "hop_length": stft.hop_length},
                   "past": model.past, "lookahead": model.lookahead,
                   "members": len(model.members) if isinstance(model, MaskBag) else 1,
                   "state_shapes": [list(shape) for shape in state_shapes]}


def export_onnx(model: MaskNet | MaskBag, stft: STFTConfig, card: dict[str, Any], directory: Path, name: str) -> Path:
    """Write `directory/name-<sha8>.onnx` atomically and return its path."""
    import onnx

    network = copy.deepcopy(model).cpu().eval().fold_batchnorm()
    shapes = network.state_shapes()
    names = [f"state{i}" for i in range(len(shapes))]
    example = (torch.rand(1, network.config.audio_channels, network.n_bins, network.window_frames + 4),
               *(torch.zeros(shape) for shape in shapes))
    dynamic = {"mix_mag": {3: "frames"}, "logits": {4: "outputs"}}
    dynamic.update({n: {len(shape) - 1: f"reach{i}"} for i, (n, shape) in enumerate(zip(names, shapes))})
    directory.mkdir(parents=True, exist_ok=True)
    written = atomic_path(lambda temporary: directory / f"{name}-{sha256_of(temporary)[:8]}.onnx", directory / f".{name}.onnx.tmp")
    with written as temporary:
        with warnings.catch_warnings():  # the TorchScript exporter (dynamic slices) warns that it is the old one
            warnings.simplefilter("ignore")
            torch.onnx.export(_Graph(network), example, str(temporary), input_names=["mix_mag", *names],
                              output_names=["logits", *(f"next_{n}" for n in names)], dynamic_axes=dynamic,
                              opset_version=OPSET, dynamo=False)
        graph = onnx.load(str(temporary))
        entry = graph.metadata_props.add()
        entry.key, entry.value = "stems_card", json.dumps(onnx_card(network, stft, card, shapes), sort_keys=True)
        onnx.save(graph, str(temporary))
    return written.final


def register(name: str, files: dict[str, Path], directory: Path | None = None) -> None:
    """Record `files` ({runtime: path in the directory}, or {"ensemble": its file}) as model
    `name` in the registry, with their sha256 (an ensemble's members' too), removing the files
    they replace that no other model or ensemble names. A network's file replaces the one of its
    runtime and keeps the other; an ensemble replaces every file of the name."""
    directory = directory or CHECKPOINT_DIR
    content = registry(directory)
    old = content["models"].get(name, {})
    old_files = set(old.values()) | (set(_members(directory / old[ENSEMBLE])) if ENSEMBLE in old else set())
    kept = {} if ENSEMBLE in files or ENSEMBLE in old else old  # a runtime's file replaces that runtime's only
    content["models"][name] = kept | {runtime: path.name for runtime, path in files.items()}
    for path in files.values():
        content["sha256"][path.name] = sha256_of(path)
        if ENSEMBLE in files:
            content["sha256"].update(_members(path))
    named = {file for entry in content["models"].values() for file in entry.values()}
    named |= {member for entry in content["models"].values() if ENSEMBLE in entry
              for member in _members(directory / entry[ENSEMBLE])}
    for file in old_files:
        if file not in named:
            (directory / file).unlink(missing_ok=True)
    content["sha256"] = {file: digest for file, digest in content["sha256"].items() if file in named}
    write_registry(content, directory)


def _members(path: Path) -> dict[str, str]:
    """{member file: sha256} of an ensemble file (`stems.ensemble`)."""
    return dict(json.loads(path.read_text())["sha256"])
