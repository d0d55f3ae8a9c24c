"""The torch engine: a MaskNet or MaskBag behind the `MaskEngine` interface (numpy in and out).

Training validates through it, and `--runtime torch` (or a .pt file) separates with it; the
shipped ONNX models are exported from the same networks (`stems.export`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .bag import MaskBag
from .config import STFTConfig
from .model import MaskNet, TimeCaches


class TorchEngine:
    """Args:
        model: the network; the engine runs an eval-mode copy with its BatchNorms folded.
        stft: its STFT settings.
        card: its card.
        device: where the network runs ("cpu", "cuda").
    """

    def __init__(self, model: MaskNet | MaskBag, stft: STFTConfig, card: dict[str, Any] | None = None,
                 device: str = "cpu"):
        self.model = copy.deepcopy(model).eval().fold_batchnorm().to(device)
        self.device = torch.device(device)
        self.stft = stft
        self.card = card or {}
        self.sources = model.sources
        self.audio_channels = model.config.audio_channels
        self.n_bins = model.n_bins
        self.past, self.lookahead = model.past, model.lookahead

    @classmethod
    def from_file(cls, path: Path, threads: int | None = None, device: str = "cpu") -> "TorchEngine":
        from .checkpoint import load_checkpoint

        if device.startswith("cuda") and not torch.cuda.is_available():
            from .errors import StemsError

            raise StemsError(f"{path}: --device cuda: no CUDA GPU is available to torch here")
        if threads:
            torch.set_num_threads(threads)
        model, stft, card = load_checkpoint(path)
        return cls(model, stft, card, device)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def logits(self, mix_mag: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(self._tensor(mix_mag)[None])[0].cpu().numpy()

    def zero_state(self) -> list:
        return [torch.zeros(shape, device=self.device) for shape in self.model.state_shapes()]

    def step(self, mix_mag: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        caches = TimeCaches(state)
        with torch.inference_mode():
            logits = self.model(self._tensor(mix_mag)[None], caches)
        return logits[0].cpu().numpy(), caches.outgoing
