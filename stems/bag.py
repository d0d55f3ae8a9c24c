"""A bag of mask networks: several MaskNets trained apart, their masks averaged.

Demucs ships bags of models and averages their waveforms; here the members share one STFT and
the reconstruction is linear in the mask, so averaging the members' soft masks is the same as
averaging their stems, at the cost of one STFT and one iSTFT. A bag has MaskNet's interface
(`forward` with or without `TimeCaches`, `past`, `lookahead`, `window_frames`, `state_shapes`).
Its "logits" are the log of the mean of the members' softmax masks: softmax gives back the mean
mask, argmax the source the bag finds most probable.
"""

from __future__ import annotations

import torch
from torch import nn

from .model import MaskNet, TimeCaches


class MaskBag(nn.Module):
    """Args:
        members: MaskNets with the same sources, channels and bins; they may differ in widths,
            strides and window. The bag's window reaches as far back as the member reaching
            furthest back (`past`) and as far ahead as the one reaching furthest ahead
            (`lookahead`); each member's outputs are aligned to the bag's.
    """

    def __init__(self, members: list[MaskNet]):
        super().__init__()
        if not members:
            raise ValueError("a bag needs at least one model")
        first = members[0]
        for member in members[1:]:
            same = (member.config.sources, member.config.audio_channels, member.n_bins)
            if same != (first.config.sources, first.config.audio_channels, first.n_bins):
                raise ValueError("bag members must share sources, channels and STFT bins")
        self.members = nn.ModuleList(members)
        self.config = first.config  # sources and audio_channels, which every member shares
        self.n_bins = first.n_bins
        self.past = max(m.past for m in members)
        self.lookahead = max(m.lookahead for m in members)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    @property
    def window_frames(self) -> int:
        return self.past + self.lookahead + 1

    @torch.no_grad()
    def fold_batchnorm(self) -> "MaskBag":
        for member in self.members:
            member.fold_batchnorm()
        return self

    def forward(self, mix_mag: torch.Tensor, caches: TimeCaches | None = None) -> torch.Tensor:
        """(batch, channels, bins, frames) -> (batch, sources, channels, bins, frames - past -
        lookahead) log of the members' mean mask (streaming: one output per new frame).

        A member reaching less far back drops its first outputs (offline they are frames before
        the bag's first), one reaching less far ahead is delayed by the difference (its outputs
        come sooner): both through a cache of its logits, so streaming aligns them too."""
        caches = caches or TimeCaches()
        aligned = []
        for member in self.members:
            early, late = self.past - member.past, self.lookahead - member.lookahead
            logits = caches.extend(member(mix_mag, caches), early + late)
            aligned.append(logits[..., early: logits.shape[-1] - late])
        return mean_log_mask(aligned)

    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        caches = TimeCaches()
        with torch.no_grad():
            self.forward(torch.ones(batch, self.config.audio_channels, self.n_bins, self.window_frames), caches)
        return caches.shapes


def mean_log_mask(member_logits: list[torch.Tensor]) -> torch.Tensor:
    """Members' (batch, sources, ...) logits -> log of their mean softmax mask over sources.

    The softmax is written out (max, exp, sum, divide): exported to ONNX, a softmax over the
    sources axis, which is not the last one, transposes the logits there and back."""
    total = 0.0
    for logits in member_logits:
        exp = torch.exp(logits - logits.amax(dim=1, keepdim=True))
        total = total + exp / exp.sum(dim=1, keepdim=True)
    return torch.log((total / len(member_logits)).clamp_min(1e-12))
