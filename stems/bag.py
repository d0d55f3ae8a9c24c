"""A bag of mask networks: several MaskNets trained apart, their masks averaged.

Demucs ships bags of models and averages their waveforms; here the members share one STFT and
the reconstruction is linear in the mask, so averaging the members' soft masks is the same as
averaging their stems, at the cost of one STFT and one iSTFT. A bag exposes MaskNet's interface
(`forward`, `pad`, `input_magnitudes`, `past`, `lookahead`, `window_frames`) so the separator,
streaming and evaluation take either. Its "logits" are the log of the mean of the members' softmax masks:
softmax gives back the mean mask, argmax the source the bag finds most probable.
"""

from __future__ import annotations

import torch
from torch import nn

from .model import MaskNet


class MaskBag(nn.Module):
    """Args:
        members: MaskNets with the same sources, channels and bins; they may differ in widths,
            strides, inputs (`side_input`) and window. The bag's window reaches as far back as
            the member reaching furthest back (`past`) and as far ahead as the one reaching
            furthest ahead (`lookahead`); each member reads the part of it that is its own window.
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
        self.widest = max(members, key=lambda m: m.in_channels)
        self.in_channels = self.widest.in_channels

    @property
    def window_frames(self) -> int:
        return self.past + self.lookahead + 1

    def pad(self, mix_mag: torch.Tensor) -> torch.Tensor:
        """Zero frames before and after (..., frames) magnitudes, so `forward` returns one
        output per input frame."""
        return nn.functional.pad(mix_mag, (self.past, self.lookahead))

    def input_magnitudes(self, mix_spec: torch.Tensor) -> torch.Tensor:
        """The widest member's input; a member without the side channel reads the first channels."""
        return self.widest.input_magnitudes(mix_spec)

    def member_frames(self, member: MaskNet, frames: int) -> slice:
        """The input frames of the bag's `frames` that `member` reads: its outputs then line up
        with the bag's (output j is the mask of input frame j + past)."""
        return slice(self.past - member.past, frames - (self.lookahead - member.lookahead))

    @torch.no_grad()
    def fold_batchnorm(self) -> "MaskBag":
        for member in self.members:
            member.fold_batchnorm()
        return self

    def forward(self, mix_mag: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, bins, frames) -> (batch, sources, channels, bins, frames - past -
        lookahead) log of the members' mean mask."""
        frames = mix_mag.shape[-1]
        return mean_log_mask([m(mix_mag[:, : m.in_channels, :, self.member_frames(m, frames)]) for m in self.members])


def mean_log_mask(member_logits: list[torch.Tensor]) -> torch.Tensor:
    """Members' (batch, sources, ...) logits -> log of their mean softmax mask over sources."""
    mean = sum(torch.softmax(logits, dim=1) for logits in member_logits) / len(member_logits)
    return torch.log(mean.clamp_min(1e-12))
