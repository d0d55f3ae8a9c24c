"""Speed and memory of `stems separate`: file in -> four wav files out, model load included.

Prints x real time and peak RSS for a 3-minute stereo 44.1 kHz song (a real CC0 song from
../shared/data when present, else synthetic), separated by `stems separate` processes that
alternate between the runtimes given and, with --against DIR, the `stems separate` of another
checkout (a git worktree of an earlier commit: `git worktree add /tmp/old e32ab27`) (these CPUs
vary about 2x between days, so only runs of one sitting compare: their ratios are printed); where the time goes per stage, beside the no-network
floor (read + STFT + iSTFT + write); Open-Unmix's umxhq network alone on the same song, when the
`openunmix` package is installed (`pip install --no-deps openunmix`: its weights are not needed
for timing, so it runs with random ones); and peak RSS for a 60-minute file.

With several --checkpoint models (comma-separated: the model roster), each round runs every model
and Open-Unmix's network once, alternating, and prints each model's speed against that network
in the same round (the roster's floors: docs/benchmarks.md).

Run: .venv/bin/python scripts/bench.py [--minutes 3] [--long-minutes 60] [--checkpoint default[,fast,...]]
     [--runtimes onnx,torch] [--against DIR ...] [--rounds 3] [--shifts 1] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from stems.engine import load_engines

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


def song_file(tmp: Path, minutes: float) -> tuple[np.ndarray, str, Path]:
    """`song(minutes)` written as a 16-bit wav in `tmp`: (audio, what it is, its path)."""
    audio, what = song(minutes * 60)
    path = tmp / "song.wav"
    sf.write(path, audio.T, RATE, subtype="PCM_16")
    return audio, what, path


# The child reports its own peak RSS (VmHWM, reset at exec) at exit: getrusage's ru_maxrss would also
# count the pages the child shared with this process between fork and exec.
_CHILD = ("import atexit, sys\n"
          "atexit.register(lambda: sys.stderr.write([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]))\n"
          "from stems.cli import main\n"
          "sys.argv = ['stems', *sys.argv[1:]]\n"
          "main()\n")


def run_cli(path: Path, out: Path, args: argparse.Namespace, runtime: str, checkpoint: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `stems separate` process of `checkpoint`; `runtime`
    is "onnx", "torch", or a checkout's directory whose own `stems separate` runs (with its defaults)."""
    command = [sys.executable, "-c", _CHILD, "separate", str(path), "-o", str(out), "--checkpoint", checkpoint,
               "--shifts", str(args.shifts), "--overwrite"]
    env, cwd = None, None
    if runtime in ("onnx", "torch"):
        command += ["--runtime", runtime] + (["--threads", str(args.threads)] if args.threads else [])
    else:
        env, cwd = {**os.environ, "PYTHONPATH": runtime}, runtime
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"stems separate failed: {done.stderr[-500:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1].split()[1])
    return seconds, peak_kb / 1024


def startup_seconds(checkpoint: str, runtime: str) -> float:
    """Interpreter start, the CLI's imports and the model load, in a fresh process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import stems.cli; from stems.engine import load_engines; "
                    f"load_engines({checkpoint!r}, {runtime!r})"], check=True)
    return time.perf_counter() - started


class _NoNetwork:
    """An engine whose logits are zeros (uniform masks) at no cost: the pipeline without the network."""

    def __init__(self, engine):
        self.card, self.stft, self.sources = engine.card, engine.stft, engine.sources
        self.audio_channels, self.n_bins = engine.audio_channels, engine.n_bins
        self.past, self.lookahead = engine.past, engine.lookahead

    def logits(self, mix_mag: np.ndarray) -> np.ndarray:
        frames = mix_mag.shape[-1] - self.past - self.lookahead
        return np.zeros((len(self.sources), self.audio_channels, self.n_bins, frames), dtype=np.float32)


def stages(path: Path, out: Path, checkpoint: str, runtime: str, threads: int | None) -> dict[str, float]:
    """Seconds per stage of one `separate_file` of the song in this process, chunk by chunk as the
    separator goes (each stage's function timed where the separator calls it: reading, the STFT
    and the network run in the separator's worker thread beside the masks, the reconstruction
    and the writing, so the stages add up to more than the wall time), the start-up of a fresh
    process, and the same file separated without the network (the floor)."""
    from stems import separator as pipeline
    from stems.files import separate_file
    from stems.separator import Separator

    engines, card = load_engines(checkpoint, runtime, threads)
    times = dict.fromkeys(("STFT", "network", "masks", "reconstruct (mask x STFT + iSTFT)"), 0.0)

    def timed(stage, function):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                times[stage] += time.perf_counter() - started
        return run

    originals = (pipeline.spectral.stft_frames, pipeline.inference_masks, pipeline.reconstruct)
    pipeline.spectral.stft_frames = timed("STFT", originals[0])
    pipeline.inference_masks = timed("masks", originals[1])
    pipeline.reconstruct = timed("reconstruct (mask x STFT + iSTFT)", originals[2])
    for engine in engines:
        engine.logits = timed("network", engine.logits)
    try:
        started = time.perf_counter()
        separate_file(Separator(engines, card=card), path, out, overwrite=True)
        whole = time.perf_counter() - started
    finally:
        pipeline.spectral.stft_frames, pipeline.inference_masks, pipeline.reconstruct = originals
    times["separate_file, wall (read, STFT, network beside the rest)"] = whole
    times["start-up (interpreter, imports, model load)"] = startup_seconds(checkpoint, runtime)
    started = time.perf_counter()
    separate_file(Separator([_NoNetwork(e) for e in engines], card=card), path, out / "floor", overwrite=True)
    times["no-network floor: the same file without the network"] = time.perf_counter() - started
    return times


def open_unmix_seconds(audio: np.ndarray, threads: int) -> float | None:
    """umxhq's network alone (4 targets, no Wiener filter) on the song's spectrogram, or None
    without the openunmix package. Random weights: the time does not depend on them."""
    import types

    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # its package imports it; the model does not use it
    try:
        import torch
        from openunmix.model import OpenUnmix
    except ImportError:
        return None
    torch.set_num_threads(threads)
    frames = audio.shape[-1] // 1024 + 1
    spec = torch.rand(1, 2, 2049, frames)  # umxhq: n_fft 4096, hop 1024
    network = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487).eval()
    with torch.inference_mode():
        started = time.perf_counter()
        for _ in range(4):  # one network per target
            network(spec)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--checkpoint", default="default", help="model(s), comma-separated: alternated, each against Open-Unmix")
    parser.add_argument("--runtimes", default="onnx", help="comma-separated: onnx, torch (alternated)")
    parser.add_argument("--against", action="append", default=[],
                        help="another checkout whose stems separate alternates too (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shifts", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    runtimes = args.runtimes.split(",") + [str(Path(other).resolve()) for other in args.against]
    checkpoints = args.checkpoint.split(",")
    if len(checkpoints) > 1:
        return roster(args, checkpoints, runtimes[0])
    print(f"command: {' '.join(['python', *sys.argv])}  ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="stems-bench-") as tmp:
        tmp = Path(tmp)
        audio, what, path = song_file(tmp, args.minutes)
        duration = audio.shape[1] / RATE
        for runtime in runtimes:
            run_cli(path, tmp / "warm", args, runtime, args.checkpoint)  # page cache, first-import costs
        runs = {runtime: [] for runtime in runtimes}
        for _ in range(args.rounds):
            for runtime in runtimes:
                runs[runtime].append(run_cli(path, tmp / "out", args, runtime, args.checkpoint))
        print(f"{args.minutes:g}-minute stereo song ({what}), file -> 4 wav files, model load included, "
              f"{args.rounds} alternating rounds:")
        for runtime, results in runs.items():
            seconds = [s for s, _ in results]
            print(f"  {Path(runtime).name:5s} median {statistics.median(seconds):.2f} s = {duration / statistics.median(seconds):.1f}x "
                  f"real time (runs {', '.join(f'{s:.2f}' for s in seconds)} s), peak RSS {max(p for _, p in results):.0f} MB")
        if len(runtimes) > 1:
            first, *others = runtimes
            for other in others:
                ratios = [o[0] / f[0] for f, o in zip(runs[first], runs[other])]
                print(f"  {Path(other).name} / {first} time per round: {', '.join(f'{r:.2f}' for r in ratios)} "
                      f"(median {statistics.median(ratios):.2f}x)")
        (tmp / "stages").mkdir()
        times = stages(path, tmp / "stages", args.checkpoint, runtimes[0], args.threads)
        print(f"where the time goes ({runtimes[0]}, one process, one pass, {args.minutes:g}-minute song):")
        for name, value in times.items():
            print(f"  {name:50s} {value:6.2f} s")
        umx = open_unmix_seconds(audio, args.threads or os.cpu_count())
        if umx is None:
            print("Open-Unmix: not installed (pip install --no-deps openunmix)")
        else:
            ours = times["network"]
            print(f"Open-Unmix umxhq network alone, 4 targets: {umx:.2f} s = {umx / ours:.1f}x our network's "
                  f"{ours:.2f} s; {umx / statistics.median(s for s, _ in runs[runtimes[0]]):.1f}x our whole "
                  f"file -> files run")
        if args.long_minutes > 0:
            long_file(audio, tmp, args, runtimes[0], args.checkpoint)


def long_file(audio: np.ndarray, tmp: Path, args: argparse.Namespace, runtime: str, checkpoint: str) -> None:
    """Time and peak RSS of `checkpoint` on the song repeated to --long-minutes, written in turn."""
    reps = int(np.ceil(args.long_minutes / args.minutes))
    long_path = tmp / "long.wav"
    with sf.SoundFile(long_path, "w", RATE, 2, "PCM_16") as handle:
        for _ in range(reps):
            handle.write(audio.T)
    seconds, peak = run_cli(long_path, tmp / "long-out", args, runtime, checkpoint)
    minutes = reps * args.minutes
    print(f"{minutes:g}-minute file ({runtime}, {checkpoint}): {seconds:.1f} s = {minutes * 60 / seconds:.1f}x real time, "
          f"peak RSS {peak:.0f} MB")


def roster(args: argparse.Namespace, checkpoints: list[str], runtime: str) -> None:
    """Each model of `checkpoints` and Open-Unmix's network alone, once each per round, in turn;
    per model: median seconds, x real time, peak RSS, and the median over rounds of Open-Unmix's
    network time over the model's file -> files time (the roster's speed floors read it); then the
    first model's peak RSS on a --long-minutes file."""
    print(f"command: {' '.join(['python', *sys.argv])}  ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="stems-bench-") as tmp:
        tmp = Path(tmp)
        audio, what, path = song_file(tmp, args.minutes)
        duration = audio.shape[1] / RATE
        for checkpoint in checkpoints:
            run_cli(path, tmp / "warm", args, runtime, checkpoint)  # page cache, first-import costs
        if open_unmix_seconds(audio[:, : RATE * 10], args.threads or os.cpu_count()) is None:
            raise SystemExit("Open-Unmix is not installed: pip install --no-deps openunmix")
        runs = {checkpoint: [] for checkpoint in checkpoints}
        umx = []
        for _ in range(args.rounds):
            for checkpoint in checkpoints:
                runs[checkpoint].append(run_cli(path, tmp / "out", args, runtime, checkpoint))
            umx.append(open_unmix_seconds(audio, args.threads or os.cpu_count()))
        print(f"{args.minutes:g}-minute stereo song ({what}), file -> 4 wav files, model load included ({runtime}), "
              f"{args.rounds} alternating rounds; Open-Unmix umxhq network alone: median {statistics.median(umx):.2f} s "
              f"(runs {', '.join(f'{s:.2f}' for s in umx)} s)")
        for checkpoint, results in runs.items():
            seconds = [s for s, _ in results]
            ratios = [u / s for u, s in zip(umx, seconds)]
            print(f"  {checkpoint:12s} median {statistics.median(seconds):6.2f} s = {duration / statistics.median(seconds):5.1f}x "
                  f"real time, {statistics.median(ratios):.2f}x Open-Unmix's network (rounds {', '.join(f'{r:.2f}' for r in ratios)}), "
                  f"peak RSS {max(p for _, p in results):.0f} MB")
        if args.long_minutes > 0:
            long_file(audio, tmp, args, runtime, checkpoints[0])


if __name__ == "__main__":
    main()
