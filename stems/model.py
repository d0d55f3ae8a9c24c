"""The mask network: mix magnitudes in, per-stem logits out (the article's CNN, four heads).

The article slides a ~300 ms window over the mix spectrogram and predicts the mask of the centre
frame. Here every convolution is "valid" in time (no time padding), so a forward pass over
W = 2 * context + 1 frames returns exactly one frame and a pass over T + 2 * context frames returns
T frames: the one-pass network *is* the sliding window, computed without repeating work. The
window's output is the mask of its frame `past` (centred by default: past = lookahead = context;
a low-latency model looks at fewer future frames and more past ones).

Streaming runs the same forward with `TimeCaches`: every time-valid layer prepends the last
frames of its input from the previous call, so n new frames give n new outputs, each layer
computing each frame once (the output is the mask of the frame `lookahead` frames before the
newest). With caches of zero frames the forward is the offline one, so one exported graph serves
both.

Layer plan (F bins, padded to a multiple of freq_stride², c0 < c1 < c2 channels, C channels):
    log|X| per-bin standardised          (B, C, F, T)
    stem  conv (s, 3) stride (s, 1)      (B, c0, F/s, T-2)        -> 1/s frequency
    enc   conv (3, 3)                    (B, c1, F/s, T-4)
    down  conv (s, 1) stride (s, 1)      (B, c2, F/s², T-4)       -> 1/s² frequency
    res   conv (3, 3) dilated in time    (B, c2, F/s², T-4-2Σd)   one block per dilation
    up    1x1 conv to s·c1, unfold s     (B, c1, F/s, ...)        -> back to 1/s, + enc skip
    merge conv (3, 1)                    (B, c1, F/s, T-2r)
    head  1x1 conv to s·S·C, unfold s    (B, S·C, F, T-2r)        -> full resolution
          + conv (k, 1) on log|X|                                 one logit per stem, channel, bin

Upsampling is a 1x1 convolution to s times the channels followed by a reshape ("sub-pixel"
upsampling in frequency), which is much cheaper on a CPU than a strided transposed convolution
at full resolution.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .config import ModelConfig


class TimeCaches:
    """The time state of a streaming forward.

    Each time-valid operation reaching `reach` frames back calls `extend`: with incoming caches
    it prepends that operation's cached frames (batch, ..., reach) to its input and keeps the
    last `reach` frames of the result as outgoing state, in call order. Without incoming caches
    (offline) inputs pass unchanged. Caches of zero frames give the offline forward too.
    """

    def __init__(self, incoming: Sequence[torch.Tensor] | None = None):
        self.incoming = None if incoming is None else list(incoming)
        self.outgoing: list[torch.Tensor] = []
        self.shapes: list[tuple[int, ...]] = []  # each cache's shape, (batch, ..., reach)

    def extend(self, x: torch.Tensor, reach: int) -> torch.Tensor:
        if reach == 0:
            return x
        self.shapes.append((*x.shape[:-1], reach))
        if self.incoming is None:
            return x
        x = torch.cat([self.incoming[len(self.outgoing)], x], dim=-1)
        self.outgoing.append(x[..., x.shape[-1] - reach:])
        return x


def _conv_bn(in_ch: int, out_ch: int, kernel: tuple[int, int], **kwargs) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, bias=False, **kwargs), nn.BatchNorm2d(out_ch), nn.ReLU())


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.conv = _conv_bn(channels, channels, (3, 3), padding=(1, 0), dilation=(1, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation
        return x[..., d: x.shape[-1] - d] + self.conv(x)


def unfold_frequency(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, c * factor, F, T) -> (B, c, F * factor, T): each bin's channels become `factor` bins."""
    batch, channels, bins, frames = x.shape
    x = x.reshape(batch, channels // factor, factor, bins, frames).transpose(2, 3)
    return x.reshape(batch, channels // factor, bins * factor, frames)


class MaskNet(nn.Module):
    """Predicts per-stem mask logits for every frame that has its full context.

    Args:
        config: the layer sizes.
        n_bins: frequency bins of the STFT (n_fft // 2 + 1).
    """

    def __init__(self, config: ModelConfig, n_bins: int):
        super().__init__()
        self.config = config
        self.n_bins = n_bins
        c0, c1, c2 = config.widths
        s = config.freq_stride
        channels = config.audio_channels
        self.padded_bins = -(-n_bins // (s * s)) * s * s
        self.context = 2 + sum(config.dilations)
        self.lookahead = self.context if config.lookahead_frames < 0 else config.lookahead_frames
        if self.lookahead > 2 * self.context:
            raise ValueError(f"lookahead_frames {self.lookahead} exceeds the window's {2 * self.context} future frames")
        self.past = 2 * self.context - self.lookahead
        # Per-bin standardisation of log-magnitudes; set from training data, then learned.
        self.input_mean = nn.Parameter(torch.zeros(n_bins, 1))
        self.input_scale = nn.Parameter(torch.ones(n_bins, 1))
        self.stem = _conv_bn(channels, c0, (s, 3), stride=(s, 1))
        self.enc = _conv_bn(c0, c1, (3, 3), padding=(1, 0))
        self.down = _conv_bn(c1, c2, (s, 1), stride=(s, 1))
        self.blocks = nn.ModuleList(_ResidualBlock(c2, d) for d in config.dilations)
        self.up = nn.Conv2d(c2, c1 * s, 1)
        self.merge = _conv_bn(c1, c1, (3, 1), padding=(1, 0))
        outputs = len(config.sources) * channels
        self.head = nn.Conv2d(c1, outputs * s, 1)
        k = config.head_kernel
        self.fine = nn.Conv2d(channels, outputs, (k, 1), padding=(k // 2, 0))

    @property
    def sources(self) -> tuple[str, ...]:
        return self.config.sources

    @property
    def window_frames(self) -> int:
        """Frames of input the network sees for one output frame (2 * context + 1)."""
        return 2 * self.context + 1

    @torch.no_grad()
    def fold_batchnorm(self) -> "MaskNet":
        """Merge each BatchNorm into the convolution before it (its eval-mode statistics become the
        convolution's scale and bias), in place, for inference: the same outputs with a third
        fewer operations. Returns self."""
        for layer in self.modules():
            if isinstance(layer, nn.Sequential) and isinstance(layer[1], nn.BatchNorm2d):
                conv, norm = layer[0], layer[1]
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                conv.weight.mul_(scale[:, None, None, None])
                conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale)
                layer[1] = nn.Identity()
        return self

    def normalise(self, mix_mag: torch.Tensor) -> torch.Tensor:
        return (torch.log(mix_mag + 1e-5) - self.input_mean) * self.input_scale

    def forward(self, mix_mag: torch.Tensor, caches: TimeCaches | None = None) -> torch.Tensor:
        """
        Args:
            mix_mag: (batch, channels, bins, frames) mix magnitudes; offline frames >= window_frames,
                streaming (with `caches`) any number of new frames.
            caches: the streaming state, updated in call order (see `TimeCaches`).
        Returns:
            (batch, sources, channels, bins, frames - 2 * context) mask logits, output j the mask of
            input frame j + past; streaming, one output per new frame, the newest `lookahead`
            frames before the newest input.
        """
        caches = caches or TimeCaches()
        batch, channels, bins, _ = mix_mag.shape
        x = self.normalise(mix_mag)
        x = nn.functional.pad(x, (0, 0, 0, self.padded_bins - bins))
        stem = self.stem(caches.extend(x, 2))
        enc = self.enc(caches.extend(stem, 2))
        y = self.down(enc)
        for block in self.blocks:
            y = block(caches.extend(y, 2 * block.dilation))
        cut = sum(self.config.dilations)
        skip = caches.extend(enc, 2 * cut)
        s = self.config.freq_stride
        y = self.merge(unfold_frequency(self.up(y), s) + skip[..., cut: skip.shape[-1] - cut])
        r = self.context
        fine = caches.extend(x, 2 * r)
        logits = unfold_frequency(self.head(y), s) + self.fine(fine[..., r: fine.shape[-1] - r])
        logits = logits[:, :, :bins]
        return logits.reshape(batch, len(self.sources), channels, bins, logits.shape[-1])

    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """Shapes of the streaming caches, in the order `forward` uses them."""
        caches = TimeCaches()
        with torch.no_grad():
            self.forward(torch.ones(batch, self.config.audio_channels, self.n_bins, self.window_frames), caches)
        return caches.shapes
