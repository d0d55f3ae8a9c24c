"""The mask network: mix magnitudes in, per-stem logits out (the article's CNN, four heads).

The article slides a ~300 ms window over the mix spectrogram and predicts the mask of the centre
frame. Here every convolution is "valid" in time (no time padding), so a forward pass over
W = 2 * context + 1 frames returns exactly one frame and a pass over T + 2 * context frames returns
T frames: the one-pass network *is* the sliding window, computed without repeating work. The
window's output is the mask of its frame `past` (centred by default: past = lookahead = context;
a low-latency model looks at fewer future frames and more past ones).

Layer plan (F bins, padded to a multiple of freq_stride², c0 < c1 < c2 channels; the input has
C' = C channels, or C + 1 with the side magnitude |L - R| / 2 when `side_input` is set):
    log|X| per-bin standardised          (B, C', F, T)
    stem  conv (s, 3) stride (s, 1)      (B, c0, F/s, T-2)        -> 1/s frequency
    enc   conv (3, 3)                    (B, c1, F/s, T-4)        + offset per (c1, band)
    down  conv (s, 1) stride (s, 1)      (B, c2, F/s², T-4)       -> 1/s² frequency, + offset per (c2, band)
    res   conv (3, 3) dilated            (B, c2, F/s², T-4-2Σd)   one block per dilation (time d,
                                                                  frequency `freq_dilations`)
    up    1x1 conv to s·c1, unfold s     (B, c1, F/s, ...)        -> back to 1/s, + enc skip
    merge conv (3, 1)                    (B, c1, F/s, T-2r)
    head  1x1 conv to s·S·C, unfold s    (B, S·C, F, T-2r)        -> full resolution
          + conv (k, 1) on log|X|                                 one logit per stem, channel, bin

Upsampling is a 1x1 convolution to s times the channels followed by a reshape ("sub-pixel"
upsampling in frequency): measured 4x faster on CPU than ConvTranspose2d with stride s, which
was most of the network's time at full resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


def _conv_bn(in_ch: int, out_ch: int, kernel: tuple[int, int], **kwargs) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, bias=False, **kwargs), nn.BatchNorm2d(out_ch), nn.ReLU())


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, dilation: int, freq_dilation: int):
        super().__init__()
        self.dilation = dilation
        self.conv = _conv_bn(channels, channels, (3, 3), padding=(freq_dilation, 0),
                             dilation=(freq_dilation, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.dilation: -self.dilation] + self.conv(x)


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
        self.in_channels = channels + int(config.side_input)
        self.padded_bins = -(-n_bins // (s * s)) * s * s
        self.context = 2 + sum(config.dilations)
        self.lookahead = self.context if config.lookahead_frames < 0 else config.lookahead_frames
        if self.lookahead > 2 * self.context:
            raise ValueError(f"lookahead_frames {self.lookahead} exceeds the window's {2 * self.context} future frames")
        self.past = 2 * self.context - self.lookahead
        # Per-bin standardisation of log-magnitudes; set from training data, then learned.
        self.input_mean = nn.Parameter(torch.zeros(n_bins, 1))
        self.input_scale = nn.Parameter(torch.ones(n_bins, 1))
        self.stem = _conv_bn(self.in_channels, c0, (s, 3), stride=(s, 1))
        self.enc = _conv_bn(c0, c1, (3, 3), padding=(1, 0))
        self.down = _conv_bn(c1, c2, (s, 1), stride=(s, 1))
        # Per-band offsets (`band_offsets`), None where disabled: adding zeros would cost a pass over
        # the encoder's features (≈ 0.2 s per 3-minute song, timed beside a training run).
        with_offsets = config.band_offsets
        self.enc_offset = nn.Parameter(torch.zeros(c1, self.padded_bins // s, 1)) if with_offsets else None
        self.down_offset = nn.Parameter(torch.zeros(c2, self.padded_bins // (s * s), 1)) if with_offsets else None
        freq_dilations = config.freq_dilations or (1,) * len(config.dilations)
        self.blocks = nn.Sequential(*(_ResidualBlock(c2, d, f) for d, f in zip(config.dilations, freq_dilations)))
        self.up = nn.Conv2d(c2, c1 * s, 1)
        self.merge = _conv_bn(c1, c1, (3, 1), padding=(1, 0))
        outputs = len(config.sources) * channels
        self.head = nn.Conv2d(c1, outputs * s, 1)
        k = config.head_kernel
        self.fine = nn.Conv2d(self.in_channels, outputs, (k, 1), padding=(k // 2, 0))

    @torch.no_grad()
    def fold_batchnorm(self) -> "MaskNet":
        """Merge each BatchNorm into the convolution before it (its eval-mode statistics become the
        convolution's scale and bias), in place, for inference: the same outputs with a third
        fewer operations, which matters most when streaming many tiny blocks. Returns self."""
        for layer in self.modules():
            if isinstance(layer, nn.Sequential) and isinstance(layer[1], nn.BatchNorm2d):
                conv, norm = layer[0], layer[1]
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                conv.weight.mul_(scale[:, None, None, None])
                conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale)
                layer[1] = nn.Identity()
        return self

    def input_magnitudes(self, mix_spec: torch.Tensor) -> torch.Tensor:
        """(..., channels, bins, frames) complex mix STFT -> (..., in_channels, bins, frames) the
        network's input: each channel's magnitude, then |L - R| / 2 when `side_input` is set."""
        mags = mix_spec.abs()
        if not self.config.side_input:
            return mags
        side = (mix_spec[..., 0:1, :, :] - mix_spec[..., 1:2, :, :]).abs() * 0.5
        return torch.cat([mags, side], dim=-3)

    def pad(self, mix_mag: torch.Tensor) -> torch.Tensor:
        """Zero frames before and after (..., frames) magnitudes, so `forward` returns one
        output per input frame."""
        return nn.functional.pad(mix_mag, (self.past, self.lookahead))

    @property
    def window_frames(self) -> int:
        """Frames of input the network sees for one output frame (2 * context + 1)."""
        return 2 * self.context + 1

    def normalise(self, mix_mag: torch.Tensor) -> torch.Tensor:
        return (torch.log(mix_mag + 1e-5) - self.input_mean) * self.input_scale

    def encode(self, stem_out: torch.Tensor) -> torch.Tensor:
        """(B, c0, F/s, T) stem output -> (B, c1, F/s, T - 2) encoder features, band offsets added."""
        enc = self.enc(stem_out)
        return enc if self.enc_offset is None else enc + self.enc_offset

    def downsample(self, enc: torch.Tensor) -> torch.Tensor:
        """(B, c1, F/s, T) encoder features -> (B, c2, F/s², T), band offsets added."""
        coarse = self.down(enc)
        return coarse if self.down_offset is None else coarse + self.down_offset

    def forward(self, mix_mag: torch.Tensor) -> torch.Tensor:
        """
        Args:
            mix_mag: (batch, in_channels, bins, frames) `input_magnitudes`, frames >= window_frames.
        Returns:
            (batch, sources, channels, bins, frames - 2 * context) mask logits; output j is the
            mask of input frame j + past.
        """
        batch, _, bins, frames = mix_mag.shape
        x = self.normalise(mix_mag)
        x = nn.functional.pad(x, (0, 0, 0, self.padded_bins - bins))
        enc = self.encode(self.stem(x))
        y = self.blocks(self.downsample(enc))
        cut = sum(self.config.dilations)
        s = self.config.freq_stride
        y = self.merge(unfold_frequency(self.up(y), s) + enc[..., cut: enc.shape[-1] - cut])
        r = self.context
        logits = unfold_frequency(self.head(y), s) + self.fine(x[..., r: frames - r])
        logits = logits[:, :, :bins]
        return logits.reshape(batch, len(self.config.sources), self.config.audio_channels, bins, frames - 2 * r)
