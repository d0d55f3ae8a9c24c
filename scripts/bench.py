"""Speed and memory of `stems separate`: file in -> four wav files out, model load included.

Prints x real time and peak RSS for a 3-minute stereo 44.1 kHz song (a real CC0 song from
../shared/data when present, else synthetic), peak RSS for a 60-minute file, and where the time
goes per stage.

Run: .venv/bin/python scripts/bench.py [--minutes 3] [--long-minutes 60] [--checkpoint default] [--shifts 1]
(the per-stage times are for one pass: --shifts N repeats every stage but reading and writing N times)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from stems import Separator, spectral
from stems.masks import inference_masks
from stems.reconstruct import reconstruct
from stems.separator import output_groups

RATE = 44100
CC0 = Path(__file__).resolve().parents[1].parent / "shared/data/eir-cc0/train/Lithium"


def song(seconds: float) -> tuple[np.ndarray, str]:
    if CC0.is_dir():
        stems = [sf.read(p, dtype="float32", always_2d=True)[0] for p in sorted(CC0.glob("*.ogg"))]
        length = min(len(s) for s in stems)
        mix = sum(s[:length] for s in stems).T
        reps = int(np.ceil(seconds * RATE / mix.shape[1]))
        return np.tile(mix, reps)[:, : int(seconds * RATE)] * 0.5, f"CC0 song {CC0.name}"
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((2, int(seconds * RATE)))).astype(np.float32), "white noise"


# The child reports its own peak RSS (VmHWM, reset at exec) at exit: getrusage's ru_maxrss would also
# count the pages the child shared with this process between fork and exec.
_CHILD = ("import atexit, sys\n"
          "atexit.register(lambda: sys.stderr.write([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]))\n"
          "from stems.cli import main\n"
          "sys.argv = ['stems', *sys.argv[1:]]\n"
          "main()\n")


def run_cli(path: Path, out: Path, checkpoint: str, shifts: int = 1) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `stems separate` process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, "separate", str(path), "-o", str(out), "--checkpoint",
                           checkpoint, "--shifts", str(shifts), "--overwrite"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"stems separate failed: {done.stderr[-500:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1].split()[1])
    return seconds, peak_kb / 1024


def stages(audio: np.ndarray, checkpoint: str) -> dict[str, float]:
    """Seconds per stage for the whole song in one process (chunked as the separator does)."""
    separator = Separator.from_checkpoint(checkpoint)
    stft, model = separator.stft, separator.model
    x = torch.from_numpy(audio)
    times = dict.fromkeys(("stft", "network", "masks", "reconstruct (mask x STFT + iSTFT)"), 0.0)
    total = spectral.n_frames(x.shape[-1], stft)
    groups = output_groups(separator.sources)
    with torch.inference_mode():
        t = time.perf_counter()
        spec = spectral.stft(x, stft)
        times["stft"] += time.perf_counter() - t
        mag = model.pad(model.input_magnitudes(spec))
        for a in range(0, total, separator.chunk_frames):
            b = min(a + separator.chunk_frames, total)
            t = time.perf_counter()
            logits = model(mag[None, ..., a: b + model.window_frames - 1])[0]
            times["network"] += time.perf_counter() - t
            t = time.perf_counter()
            masks = inference_masks(logits, "soft")
            times["masks"] += time.perf_counter() - t
            t = time.perf_counter()
            reconstruct(spec[..., a:b], masks, groups, a, total, stft)
            times["reconstruct (mask x STFT + iSTFT)"] += time.perf_counter() - t
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--shifts", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"command: {' '.join(['python', *sys.argv])}  (torch threads: {torch.get_num_threads()})")
    with tempfile.TemporaryDirectory(prefix="stems-bench-") as tmp:
        tmp = Path(tmp)
        audio, what = song(args.minutes * 60)
        path = tmp / "song.wav"
        sf.write(path, audio.T, RATE, subtype="PCM_16")
        run_cli(path, tmp / "warm", args.checkpoint, args.shifts)  # page cache, first-import costs
        seconds, peak = run_cli(path, tmp / "out", args.checkpoint, args.shifts)
        duration = audio.shape[1] / RATE
        print(f"{args.minutes:g}-minute stereo song ({what}), file -> 4 wav files, model load included: "
              f"{seconds:.2f} s = {duration / seconds:.1f}x real time, peak RSS {peak:.0f} MB")
        for name, value in stages(audio, args.checkpoint).items():
            print(f"  {name:36s} {value:6.2f} s  ({value / duration * 60:.2f} s per minute of audio)")
        if args.long_minutes > 0:
            reps = int(np.ceil(args.long_minutes / args.minutes))
            long_path = tmp / "long.wav"
            with sf.SoundFile(long_path, "w", RATE, 2, "PCM_16") as handle:
                for _ in range(reps):
                    handle.write(audio.T)
            del audio
            (tmp / "out").exists() and subprocess.run(["rm", "-rf", str(tmp / "out")], check=True)
            seconds, peak = run_cli(long_path, tmp / "long-out", args.checkpoint, args.shifts)
            minutes = reps * args.minutes
            print(f"{minutes:g}-minute file: {seconds:.1f} s = {minutes * 60 / seconds:.1f}x real time, peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
