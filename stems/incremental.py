"""The mask network run frame by frame, each layer computing each frame once.

`MaskNet` is valid (unpadded) in time, so its output for frame t depends on input frames
t - past .. t + lookahead only. Streaming could re-run the whole window for every new frame (13x
the work); instead each time convolution here keeps the last (kernel - 1) * dilation frames of its
input, and the skip paths keep FIFOs of the frames they still owe. Feeding the same frames in any
split gives the same logits as one pass of `MaskNet.forward` over all of them. A bag runs its
members so, side by side.
"""

from __future__ import annotations

import torch

from .bag import MaskBag, mean_log_mask
from .model import MaskNet, unfold_frequency


class IncrementalMaskNet:
    """Args:
        model: a MaskNet in eval mode.
    """

    def __init__(self, model: MaskNet):
        self.model = model
        self.tails: dict[str, torch.Tensor] = {}
        cut = sum(model.config.dilations)
        self.enc_fifo = _Fifo(skip=cut)  # merge frame j uses enc frame j + cut
        self.input_fifo = _Fifo(skip=model.context)  # head frame j uses input frame j + context

    def _valid(self, name: str, x: torch.Tensor, reach: int, layer) -> torch.Tensor | None:
        """Apply a time-valid layer reaching `reach` frames back to its cached tail + x."""
        tail = self.tails.get(name)
        if tail is not None:
            x = torch.cat([tail, x], dim=-1)
        self.tails[name] = x[..., -reach:]
        return layer(x) if x.shape[-1] > reach else None

    @torch.inference_mode()
    def push(self, mix_mag: torch.Tensor) -> torch.Tensor | None:
        """
        Args:
            mix_mag: (1, in_channels, bins, n) the next n frames of `MaskNet.input_magnitudes`.
        Returns:
            (1, sources, channels, bins, k) logits of the k output frames that became computable
            (output j is the mask of input frame j + past), or None.
        """
        m = self.model
        bins, frames = mix_mag.shape[-2:]
        x = m.normalise(mix_mag)
        x = torch.nn.functional.pad(x, (0, 0, 0, m.padded_bins - bins))
        self.input_fifo.push(x)
        y = self._valid("stem", x, 2, m.stem)
        y = self._valid("enc", y, 2, m.encode) if y is not None else None
        if y is None:
            return None
        self.enc_fifo.push(y)
        y = m.downsample(y)
        for i, block in enumerate(m.blocks):
            y = self._valid(f"block{i}", y, 2 * block.dilation, block)
            if y is None:
                return None
        s = m.config.freq_stride
        count = y.shape[-1]
        y = m.merge(unfold_frequency(m.up(y), s) + self.enc_fifo.pop(count))
        logits = unfold_frequency(m.head(y), s) + m.fine(self.input_fifo.pop(count))
        logits = logits[:, :, :bins]
        return logits.reshape(1, len(m.config.sources), m.config.audio_channels, bins, count)


class IncrementalMaskBag:
    """A MaskBag's members run incrementally side by side. A member whose window reaches less far
    back skips the first frames the bag's window has and it has not; one reaching less far ahead
    computes frames sooner, which wait until every member has them."""

    def __init__(self, bag: MaskBag):
        self.nets = [IncrementalMaskNet(member) for member in bag.members]
        self.channels = [member.in_channels for member in bag.members]
        self.skips = [bag.past - member.past for member in bag.members]
        empty = torch.zeros(1, len(bag.config.sources), bag.config.audio_channels, bag.n_bins, 0)
        self.pending = [empty] * len(bag.members)  # logits not yet returned, per member

    def push(self, mix_mag: torch.Tensor) -> torch.Tensor | None:
        """As `IncrementalMaskNet.push`, with the bag's log mean mask for logits."""
        for i, net in enumerate(self.nets):
            x = mix_mag[:, : self.channels[i], :, self.skips[i]:]
            self.skips[i] = max(0, self.skips[i] - mix_mag.shape[-1])
            logits = net.push(x) if x.shape[-1] else None
            if logits is not None:
                self.pending[i] = torch.cat([self.pending[i], logits], dim=-1)
        ready = min(p.shape[-1] for p in self.pending)
        if ready == 0:
            return None
        logits = [p[..., :ready] for p in self.pending]
        self.pending = [p[..., ready:] for p in self.pending]
        return mean_log_mask(logits)


def incremental(model: MaskNet | MaskBag) -> IncrementalMaskNet | IncrementalMaskBag:
    return IncrementalMaskBag(model) if isinstance(model, MaskBag) else IncrementalMaskNet(model)


class _Fifo:
    """Frames along the last axis, taken from the front after dropping the first `skip`."""

    def __init__(self, skip: int):
        self.frames: torch.Tensor | None = None
        self.skip = skip

    def push(self, x: torch.Tensor) -> None:
        self.frames = x if self.frames is None else torch.cat([self.frames, x], dim=-1)
        if self.skip:
            dropped = min(self.skip, self.frames.shape[-1])
            self.frames = self.frames[..., dropped:]
            self.skip -= dropped

    def pop(self, count: int) -> torch.Tensor:
        out, self.frames = self.frames[..., :count], self.frames[..., count:]
        return out
