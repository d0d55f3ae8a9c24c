"""A same-data control: Open-Unmix's network (the `openunmix` package's architecture, no weights)
trained on exactly the data and augmentation a stems config draws, for a fixed CPU budget, and its
estimates written for `stems evaluate --estimates`.

It answers whether the gap to Open-Unmix's published figures is our network or our data. The
recipe is Open-Unmix's (umxhq): one network per stem on magnitudes of a 4096-point STFT (hop 1024)
cropped at 16 kHz, hidden size 512, three BLSTM layers, 6-s excerpts, batch 16, Adam at 1e-3 with
weight decay 1e-5, MSE on magnitudes; separation by one iteration of its multichannel Wiener filter.
The excerpts come from the config's ExcerptSampler (same songs, remixing, gains, speed, rendered
share, vocal levels), seeded as `stems train` seeds it.

Train (resumable: rerun the same command; it stops once --cpu-hours of process CPU time is spent):
    .venv/bin/python scripts/openunmix_control.py train configs/default.yaml --out runs/umx --cpu-hours 1.5
Separate MUSDB valid (or a folder of <song>/<stem>.* with --stems-dir), then score:
    .venv/bin/python scripts/openunmix_control.py separate runs/umx --musdb ../shared/data/musdb18-7s --out runs/umx/valid
    .venv/bin/stems evaluate --musdb ../shared/data/musdb18-7s --split valid --estimates runs/umx/valid --mask '' --oracle ''

Needs: pip install --no-deps openunmix (its model and filter import torch alone; the package also
imports torchaudio, which does not load beside this torch, so an empty stand-in module is installed
under that name before the import: nothing of torchaudio is used).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from stems.atomic import atomic_path
from stems.config import load_config
from stems.evaluate import reference_tracks
from stems.train import excerpt_sampler, load_training_songs

sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
from openunmix.filtering import wiener  # noqa: E402
from openunmix.model import OpenUnmix  # noqa: E402

RATE = 44100
N_FFT, HOP = 4096, 1024
BANDWIDTH_HZ = 16000
EXCERPT_S = 6.0
BATCH = 16
SAVE_EVERY = 10
WIENER_FRAMES = 300


def spectrogram(audio: torch.Tensor) -> torch.Tensor:
    """Complex STFT of (..., channels, samples) -> (..., channels, bins, frames)."""
    shape = audio.shape
    spec = torch.stft(audio.reshape(-1, shape[-1]), N_FFT, HOP, window=torch.hann_window(N_FFT), center=True,
                      return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def inverse(spec: torch.Tensor, length: int) -> torch.Tensor:
    shape = spec.shape
    audio = torch.istft(spec.reshape(-1, *shape[-2:]), N_FFT, HOP, window=torch.hann_window(N_FFT), center=True,
                        length=length)
    return audio.reshape(*shape[:-2], length)


def networks(sources: tuple[str, ...], mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> torch.nn.ModuleDict:
    bins = N_FFT // 2 + 1
    max_bin = int(math.ceil(BANDWIDTH_HZ / RATE * N_FFT)) + 1
    return torch.nn.ModuleDict({s: OpenUnmix(nb_bins=bins, nb_channels=2, hidden_size=512, nb_layers=3, max_bin=max_bin,
                                             input_mean=mean, input_scale=scale) for s in sources})


def train(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.set)
    cfg = config.train
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg.seed)
    if cfg.accompanied_dirs:
        raise SystemExit("error: the control trains on whole stems only: set train.accompanied_dirs=[]")
    songs, rendered, _, _ = load_training_songs(config, [])
    sampler = excerpt_sampler(config, songs, rendered, int(EXCERPT_S * RATE), cfg.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / "state.pt"
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        models = networks(config.model.sources)
        models.load_state_dict(state["models"])
        optimizer = torch.optim.Adam(models.parameters(), lr=1e-3, weight_decay=1e-5)
        optimizer.load_state_dict(state["optimizer"])
        sampler.set_state(json.loads(state["sampler"]))
        torch.set_rng_state(state["torch_rng"])
        step, spent = state["step"], state["cpu_seconds"]
    else:  # Open-Unmix's input statistics: per-bin mean and std of mix magnitudes over training excerpts
        mags = torch.cat([spectrogram(torch.from_numpy(sampler.batch(BATCH).sum(axis=1))).abs() for _ in range(4)])
        mags = mags.transpose(2, 3).reshape(-1, N_FFT // 2 + 1)
        models = networks(config.model.sources, mags.mean(0).numpy(), mags.std(0).clamp_min(1e-4).numpy())
        optimizer = torch.optim.Adam(models.parameters(), lr=1e-3, weight_decay=1e-5)
        step, spent = 0, 0.0
        (args.out / "config.json").write_text(json.dumps({"config": config.to_dict(), "cpu_hours": args.cpu_hours,
                                                          "threads": args.threads}, indent=1) + "\n")
    models.train()
    log = open(args.out / "log.jsonl", "a")
    budget = args.cpu_hours * 3600
    while spent < budget:
        started = time.process_time()
        specs = spectrogram(torch.from_numpy(sampler.batch(BATCH)))  # (batch, sources, channels, bins, frames)
        mix = specs.sum(dim=1).abs()
        losses = [torch.nn.functional.mse_loss(models[s](mix), specs[:, i].abs()) for i, s in enumerate(config.model.sources)]
        loss = sum(losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        spent += time.process_time() - started
        log.write(json.dumps({"step": step, "loss": round(loss.item(), 6), "cpu_hours": round(spent / 3600, 4)}) + "\n")
        if step % SAVE_EVERY == 0 or spent >= budget:
            log.flush()
            with atomic_path(state_path) as temporary:
                torch.save({"models": models.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                            "sampler": json.dumps(sampler.state()), "torch_rng": torch.get_rng_state(),
                            "cpu_seconds": spent}, temporary)
            print(f"step {step}: loss {loss.item():.4f}, {spent / 3600:.2f} of {args.cpu_hours} CPU hours", flush=True)
    log.close()


def separate(args: argparse.Namespace) -> None:
    settings = json.loads((args.run / "config.json").read_text())
    sources = tuple(settings["config"]["model"]["sources"])
    state = torch.load(args.run / "state.pt", weights_only=True)
    models = networks(sources)
    models.load_state_dict(state["models"])
    models.eval()
    torch.set_num_threads(args.threads)
    tracks = reference_tracks(args.musdb, "train", args.split, False, args.stems_dir, Path(".cache/stems-data"), sources)
    for name, references in tracks:
        mix = torch.from_numpy(np.asarray(references, dtype=np.float32).sum(axis=0))  # (channels, samples)
        with torch.no_grad():
            mix_spec = spectrogram(mix)  # (channels, bins, frames)
            estimates = torch.stack([models[s](mix_spec.abs()[None])[0] for s in sources], dim=-1)
            # openunmix.filtering.wiener takes (frames, bins, channels, sources) magnitudes and the
            # (frames, bins, channels, 2) mix, and gives (frames, bins, channels, 2, sources); in
            # windows of WIENER_FRAMES frames, as Open-Unmix's Separator runs it
            magnitudes, mix_ri = estimates.permute(2, 1, 0, 3), torch.view_as_real(mix_spec.permute(2, 1, 0))
            filtered = torch.cat([wiener(magnitudes[t: t + WIENER_FRAMES], mix_ri[t: t + WIENER_FRAMES], 1, softmask=False,
                                         residual=False) for t in range(0, mix_ri.shape[0], WIENER_FRAMES)])
            complex_stems = torch.view_as_complex(filtered.permute(4, 2, 1, 0, 3).contiguous())  # (sources, channels, bins, frames)
            stems = inverse(complex_stems, mix.shape[-1])
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for index, source in enumerate(sources):
            with atomic_path(folder / f"{source}.wav") as temporary:
                sf.write(temporary, stems[index].T.numpy(), RATE, format="WAV", subtype="FLOAT")
        print(f"{name}: written", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train")
    training.add_argument("config", nargs="?")
    training.add_argument("--set", action="append", default=[])
    training.add_argument("--out", type=Path, required=True)
    training.add_argument("--cpu-hours", type=float, required=True)
    training.add_argument("--threads", type=int, default=1)
    separating = commands.add_parser("separate")
    separating.add_argument("run", type=Path)
    separating.add_argument("--musdb")
    separating.add_argument("--split", default="valid")
    separating.add_argument("--stems-dir", type=Path)
    separating.add_argument("--out", type=Path, required=True)
    separating.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    train(args) if args.command == "train" else separate(args)


if __name__ == "__main__":
    main()
