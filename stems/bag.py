"""A bag of mask networks: several MaskNets trained apart, their masks averaged.

Demucs ships bags of models and averages their waveforms; here the members share one STFT and
the reconstruction is linear in the mask, so averaging the members' soft masks is the same as
averaging their stems, at the cost of one STFT and one iSTFT. A bag exposes MaskNet's interface
(`forward`, `pad`, `input_magnitudes`, `past`, `lookahead`, ...) so the separator, streaming and
evaluation take either. Its "logits" are the log of the mean of the members' softmax masks:
softmax gives back the mean mask, argmax the source the bag finds most probable.
"""

from __future__ import annotations

import torch
from torch import nn

from .model import MaskNet


class MaskBag(nn.Module):
    """Args:
        members: MaskNets with the same sources, channels, bins and window (past and look-ahead
            frames); they may differ in widths, strides and inputs (`side_input`).
    """

    def __init__(self, members: list[MaskNet]):
        super().__init__()
        if not members:
            raise ValueError("a bag needs at least one model")
        first = members[0]
        for member in members[1:]:
            same = (member.config.sources, member.config.audio_channels, member.n_bins, member.past, member.lookahead)
            if same != (first.config.sources, first.config.audio_channels, first.n_bins, first.past, first.lookahead):
                raise ValueError("bag members must share sources, channels, STFT bins and window (past, look-ahead)")
        self.members = nn.ModuleList(members)
        self.config = first.config  # sources and audio_channels, which every member shares
        self.n_bins, self.context, self.past, self.lookahead = first.n_bins, first.context, first.past, first.lookahead
        self.widest = max(members, key=lambda m: m.in_channels)
        self.in_channels = self.widest.in_channels

    @property
    def window_frames(self) -> int:
        return self.members[0].window_frames

    def pad(self, mix_mag: torch.Tensor) -> torch.Tensor:
        return self.members[0].pad(mix_mag)

    def input_magnitudes(self, mix_spec: torch.Tensor) -> torch.Tensor:
        """The widest member's input; a member without the side channel reads the first channels."""
        return self.widest.input_magnitudes(mix_spec)

    @torch.no_grad()
    def fold_batchnorm(self) -> MaskBag:
        for member in self.members:
            member.fold_batchnorm()
        return self

    def forward(self, mix_mag: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, bins, frames) -> (batch, sources, channels, bins, frames - 2 *
        context) log of the members' mean mask."""
        return mean_log_mask([member(mix_mag[:, : member.in_channels]) for member in self.members])


def mean_log_mask(member_logits: list[torch.Tensor]) -> torch.Tensor:
    """Members' (batch, sources, ...) logits -> log of their mean softmax mask over sources."""
    mean = sum(torch.softmax(logits, dim=1) for logits in member_logits) / len(member_logits)
    return torch.log(mean.clamp_min(1e-12))
