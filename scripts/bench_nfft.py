"""Network time of the default MaskNet (torch, one thread) on a 3-minute song's frames at n_fft
2048 and 4096 (hop 1024), run alternately three times: what a 4096-point STFT costs before
anyone trains one (the speed floor: the default at least half as fast as today's).

Run: .venv/bin/python scripts/bench_nfft.py
"""

import time

import torch

from stems.config import ModelConfig, STFTConfig
from stems.model import MaskNet

SIZES = (2048, 4096)
FRAMES = 180 * 44100 // 1024  # a 3-minute song at hop 1024


def main() -> None:
    torch.set_num_threads(1)
    nets = {n_fft: MaskNet(ModelConfig(), STFTConfig(n_fft=n_fft).n_bins).eval() for n_fft in SIZES}
    times = {n_fft: [] for n_fft in SIZES}
    with torch.no_grad():
        for _ in range(3):
            for n_fft, net in nets.items():
                mix_mag = torch.randn(1, 2, STFTConfig(n_fft=n_fft).n_bins, FRAMES).abs()
                start = time.perf_counter()
                net(mix_mag)
                times[n_fft].append(time.perf_counter() - start)
    for n_fft, net in nets.items():
        print(f"n_fft {n_fft}: {[round(t, 2) for t in times[n_fft]]} s, {sum(p.numel() for p in net.parameters()):,} parameters")
    print(f"4096 / 2048 (fastest of each): {min(times[4096]) / min(times[2048]):.2f}x")


if __name__ == "__main__":
    main()
