"""Soak benchmark: long runs must not grow memory.

Offline: one process, one model load, separates a long file and then many short files, printing
RSS after each; RSS after the last file must stay within 10 % of RSS after warm-up (the 10th short
file). Streaming: a song streamed through the threaded pipeline, paced at real time, for
`--stream-minutes`, printing RSS every minute and the dropouts.

Run: .venv/bin/python scripts/soak.py [--long-minutes 60] [--files 200] [--stream-minutes 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from stems import Separator
from stems.files import separate_file
from stems.reconstruct import output_groups
from stems.stream import StreamPipeline

sys.path.insert(0, str(Path(__file__).parent))
from bench import RATE, song  # noqa: E402  (the same real CC0 song as the offline benchmark)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def growth(after_warmup: float, last: float) -> str:
    change = 100 * (last / after_warmup - 1)
    return f"{change:+.1f}% ({'PASS' if change <= 10 else 'FAIL'}: limit +10%)"


def soak_offline(checkpoint: str, long_minutes: float, files: int) -> None:
    separator = Separator.from_checkpoint(checkpoint)
    audio, what = song(180.0)
    with tempfile.TemporaryDirectory(prefix="stems-soak-") as tmp:
        tmp = Path(tmp)
        if long_minutes > 0:
            long_path = tmp / "long.wav"
            with sf.SoundFile(long_path, "w", RATE, 2, "PCM_16") as handle:
                for _ in range(int(np.ceil(long_minutes / 3))):
                    handle.write(audio.T)
            started = time.perf_counter()
            separate_file(separator, long_path, tmp / "out", overwrite=True)
            print(f"{long_minutes:g}-minute file ({what}): {time.perf_counter() - started:.0f} s, RSS {rss_mb():.0f} MB",
                  flush=True)
            long_path.unlink()
        short = tmp / "short.wav"
        sf.write(short, audio[:, : 10 * RATE].T, RATE, subtype="PCM_16")
        samples = []
        started = time.perf_counter()
        for i in range(1, files + 1):
            separate_file(separator, short, tmp / "out", track=f"short{i % 10}", overwrite=True)
            samples.append(rss_mb())
            if i in (1, 10) or i % 50 == 0:
                print(f"  short file {i:4d}: RSS {samples[-1]:.0f} MB", flush=True)
        print(f"{files} files of 10 s in {time.perf_counter() - started:.0f} s; RSS after 10 files "
              f"{samples[min(9, files - 1)]:.0f} MB, after {files} {samples[-1]:.0f} MB: "
              f"{growth(samples[min(9, files - 1)], samples[-1])}")


def soak_stream(checkpoint: str, minutes: float, block_ms: float) -> None:
    separator = Separator.from_checkpoint(checkpoint, threads=1)  # as `stems stream` does
    audio, what = song(180.0)
    block = int(round(block_ms * RATE / 1000))
    total = int(minutes * 60 * RATE)

    def source():  # the song over and over, paced by the pipeline's live mode
        started = time.monotonic()
        for start in range(0, total, block):
            delay = started + start / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            offset = start % (audio.shape[1] - block)
            yield audio[:, offset: offset + block]

    pipeline = StreamPipeline(separator, output_groups(separator.sources), separator.default_mask, 2, source(),
                              [lambda out: None], live=True)
    samples: list[float] = []
    done = threading.Event()

    def sample_rss():
        while not done.wait(60):
            samples.append(rss_mb())
            stats = pipeline.stats
            print(f"  minute {len(samples):3d}: RSS {samples[-1]:.0f} MB, blocks {stats.blocks}, "
                  f"dropouts {stats.dropped_in + stats.dropped_out}", flush=True)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    stats = pipeline.run()
    done.set()
    fractions = np.array(stats.block_seconds) / (block / RATE)
    print(f"streamed {minutes:g} min of {what} paced at real time, {block_ms:g} ms blocks, checkpoint {checkpoint}: "
          f"{stats.blocks} blocks, dropouts {stats.dropped_in + stats.dropped_out}, block time p99 "
          f"{100 * np.percentile(fractions, 99):.0f}% of a block; RSS after minute 1 {samples[0]:.0f} MB, "
          f"at the end {samples[-1]:.0f} MB: {growth(samples[0], samples[-1])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--stream-minutes", type=float, default=30.0)
    parser.add_argument("--stream-checkpoint", default="default")
    parser.add_argument("--block-ms", type=float, default=20.0)
    args = parser.parse_args()
    print(f"command: python {' '.join(sys.argv)}", flush=True)
    if args.files > 0:
        soak_offline(args.checkpoint, args.long_minutes, args.files)
    if args.stream_minutes > 0:
        soak_stream(args.stream_checkpoint, args.stream_minutes, args.block_ms)


if __name__ == "__main__":
    main()
