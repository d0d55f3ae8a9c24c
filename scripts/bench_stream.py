"""Streaming benchmark: a song streamed in blocks through the threaded pipeline, as fast as possible
and paced at real time. Prints p50/p99 block processing time as a fraction of the block duration,
the algorithmic latency, the measured end-to-end latency (a sample's arrival to its stems' output)
and dropouts.

Run: .venv/bin/python scripts/bench_stream.py [--checkpoint lowlatency] [--seconds 180] [--block-ms 20]
     [--runtime onnx] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from stems import Separator
from stems.reconstruct import output_groups
from stems.stream import StreamPipeline, latency_samples

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from bench import song  # noqa: E402  (the same real CC0 song as the offline benchmark)


def run(separator: Separator, audio: np.ndarray, block: int, paced: bool) -> dict:
    rate = separator.sample_rate
    arrivals: dict[int, float] = {}
    delays: list[float] = []
    emitted = [0]

    def source():
        started = time.monotonic()
        for start in range(0, audio.shape[1], block):
            if paced:
                delay = started + start / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            arrivals[start + min(block, audio.shape[1] - start)] = time.monotonic()  # block end sample -> time
            yield audio[:, start: start + block]

    def sink(out):
        now = time.monotonic()
        emitted[0] += next(iter(out.values())).shape[1]
        ends = [end for end in arrivals if end <= emitted[0]]
        for end in ends:  # every block whose last sample is now out
            delays.append(now - arrivals.pop(end))

    pipeline = StreamPipeline(separator, output_groups(separator.sources), "soft", 2, source(), [sink], live=paced)
    started = time.monotonic()
    stats = pipeline.run()
    wall = time.monotonic() - started
    fractions = np.array(stats.block_seconds) / (block / rate)
    return {"wall": wall, "p50": np.percentile(fractions, 50), "p99": np.percentile(fractions, 99),
            "e2e_p50": 1000 * np.percentile(delays, 50), "e2e_p99": 1000 * np.percentile(delays, 99),
            "dropped": stats.dropped_in + stats.dropped_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="lowlatency")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--block-ms", type=float, default=20.0)
    parser.add_argument("--runtime", default="onnx")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    separator = Separator.from_checkpoint(args.checkpoint, args.runtime, args.threads)
    audio, what = song(args.seconds)
    block = int(round(args.block_ms * separator.sample_rate / 1000))
    algorithmic = 1000 * (latency_samples(separator) + block) / separator.sample_rate
    print(f"command: python {' '.join(sys.argv)}")
    print(f"checkpoint {args.checkpoint} ({args.runtime}, {args.threads} threads): {args.seconds:g} s of {what}, blocks of {args.block_ms:g} ms; "
          f"algorithmic latency {algorithmic:.0f} ms (look-ahead {max(e.lookahead for e in separator.engines)} frames + STFT window + block)")
    for paced in (False, True):
        r = run(separator, audio, block, paced)
        label = "paced at real time" if paced else "as fast as possible"
        print(f"  {label:20s} {args.seconds / r['wall']:5.1f}x real time; block time p50 {100 * r['p50']:.0f}% "
              f"p99 {100 * r['p99']:.0f}% of a block; end-to-end latency p50 {r['e2e_p50']:.0f} ms "
              f"p99 {r['e2e_p99']:.0f} ms; dropouts {r['dropped']}")


if __name__ == "__main__":
    main()
