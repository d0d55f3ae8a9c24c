"""Network time of the default MaskNet (torch, one thread) on a 3-minute song's frames at n_fft
2048 and 4096 (hop 1024), run alternately three times: what a 4096-point STFT costs before
anyone trains one (the speed floor: the default at least half as fast as today's).

Run: .venv/bin/python scripts/bench_nfft.py
"""
import time, torch
from stems.config import ModelConfig, STFTConfig
from stems.model import MaskNet
torch.set_num_threads(1)
frames = 180 * 44100 // 1024
nets = {n: MaskNet(ModelConfig(), STFTConfig(n_fft=n).n_bins).eval() for n in (2048, 4096)}
times = {n: [] for n in nets}
with torch.no_grad():
    for rep in range(3):
        for n, net in nets.items():
            x = torch.randn(1, 2, STFTConfig(n_fft=n).n_bins, frames).abs()
            t = time.perf_counter(); net(x); times[n].append(time.perf_counter() - t)
for n in nets: print(n, [round(t, 2) for t in times[n]], "params", sum(p.numel() for p in nets[n].parameters()))
print("ratio 4096/2048 (min):", round(min(times[4096]) / min(times[2048]), 2))
