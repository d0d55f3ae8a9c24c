"""Training throughput on this machine: examples/s and seconds per epoch (one epoch = as many
excerpts as fit end to end in the training audio).

Run: .venv/bin/python scripts/train_throughput.py [configs/default.yaml] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from stems.config import load_config
from stems.data import ExcerptSampler
from stems.model import MaskNet
from stems.train import load_training_songs, mask_loss, stft_tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/default.yaml")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    config = load_config(args.config)
    cfg = config.train
    torch.set_num_threads(cfg.threads)
    songs, rendered, _, _ = load_training_songs(config, [])
    model = MaskNet(config.model, config.stft.n_bins)
    excerpt = (cfg.excerpt_frames + 2 * model.context - 1) * config.stft.hop_length + config.stft.n_fft
    sampler = ExcerptSampler(songs, excerpt, cfg.seed, cfg.remix_probability, cfg.gain_range_db,
                             rendered=rendered, rendered_share=cfg.rendered_share)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)

    def step() -> None:
        specs = stft_tensor(sampler.batch(cfg.batch_size), config)
        inner = slice(model.past, specs.shape[-1] - model.lookahead)
        loss = mask_loss(model(specs.sum(dim=1).abs()), specs[..., inner], cfg.loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - started
    rate = args.steps * cfg.batch_size / seconds
    audio = sum(s.samples for s in sampler.songs)
    per_epoch = audio / (cfg.excerpt_frames * config.stft.hop_length)
    print(f"command: python scripts/train_throughput.py {args.config} --steps {args.steps}")
    print(f"{rate:.1f} examples/s ({seconds / args.steps:.2f} s per step of {cfg.batch_size}, "
          f"{torch.get_num_threads()} threads); one epoch = {per_epoch:.0f} excerpts of "
          f"{cfg.excerpt_frames * config.stft.hop_length / config.stft.sample_rate:.2f} s = {per_epoch / rate:.0f} s")


if __name__ == "__main__":
    main()
