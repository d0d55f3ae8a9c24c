"""Training throughput on this machine: examples/s of whole training steps and of the excerpt
draws alone (what the loader's workers must keep up with), and seconds per epoch (one epoch = as
many excerpts as fit end to end in the training audio). With --against, a variant of the config
(e.g. augmentation on) is timed too, the two alternately, and the ratio printed.

Run: .venv/bin/python scripts/train_throughput.py [configs/default.yaml] [--steps 20] [--rounds 2]
         [--set KEY=VALUE ...] [--against KEY=VALUE ...]
e.g. .venv/bin/python scripts/train_throughput.py --against 'train.augment=[pitch,eq,saturation,space,limiter,mixup]'
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from stems.config import Config, load_config
from stems.model import MaskNet
from stems.train import excerpt_sampler, load_training_songs, mask_loss, stft_tensor


class Timer:
    """One config's model, optimizer and sampler, stepped on demand."""

    def __init__(self, config: Config, songs: tuple):
        cfg = config.train
        self.config = config
        self.model = MaskNet(config.model, config.stft.n_bins)
        excerpt = (cfg.excerpt_frames + 2 * self.model.context - 1) * config.stft.hop_length + config.stft.n_fft
        train, rendered, accompanied = songs
        self.sampler = excerpt_sampler(config, train, rendered, excerpt, cfg.seed, accompanied)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr)

    def step(self) -> None:
        cfg = self.config.train
        specs = stft_tensor(self.sampler.batch(cfg.batch_size), self.config)
        inner = slice(self.model.past, specs.shape[-1] - self.model.lookahead)
        loss = mask_loss(self.model(specs.sum(dim=1).abs()), specs[..., inner], cfg.loss)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def rates(self, steps: int) -> tuple[float, float]:
        """(examples/s of training steps, examples/s of the draws alone) over `steps` batches."""
        size = self.config.train.batch_size
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        training = steps * size / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(steps):
            self.sampler.batch(size)
        return training, steps * size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/default.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="alternate rounds with --against")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="an override for both")
    parser.add_argument("--against", action="append", default=[], help="an override of the variant only")
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    torch.set_num_threads(config.train.threads)
    train, rendered, accompanied, _ = load_training_songs(config, [])
    timers = {"config": Timer(config, (train, rendered, accompanied))}
    if args.against:
        timers["variant"] = Timer(load_config(args.config, args.overrides + args.against), (train, rendered, accompanied))
    for timer in timers.values():
        timer.rates(3)  # warm-up
    rates = {name: [] for name in timers}
    for _ in range(args.rounds if args.against else 1):
        for name, timer in timers.items():
            rates[name].append(timer.rates(args.steps))
    print("command: python scripts/train_throughput.py " + shlex.join(sys.argv[1:]))
    cfg = config.train
    per_epoch = sum(s.samples for s in timers["config"].sampler.songs) / (cfg.excerpt_frames * config.stft.hop_length)
    for name, readings in rates.items():
        training = sum(r[0] for r in readings) / len(readings)
        drawing = sum(r[1] for r in readings) / len(readings)
        label = "config" if name == "config" else "variant (" + ", ".join(args.against) + ")"
        print(f"{label}: {training:.1f} examples/s training ({cfg.batch_size / training:.2f} s per step of "
              f"{cfg.batch_size}, {torch.get_num_threads()} threads), {drawing:.1f} examples/s drawing excerpts; "
              f"one epoch = {per_epoch:.0f} excerpts = {per_epoch / training:.0f} s")
    if args.against:
        ratio = [v[0] / c[0] for v, c in zip(rates["variant"], rates["config"])]
        print(f"variant / config, training: {sum(ratio) / len(ratio):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratio)})")


if __name__ == "__main__":
    main()
