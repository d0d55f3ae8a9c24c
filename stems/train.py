"""Training: random excerpts -> mix STFT -> masks -> loss; resumable, validated on MUSDB valid.

The run directory holds `config.yaml` (the resolved config), `log.jsonl` (every step's loss and
every validation), `state.pt` (model, optimiser, scheduler and RNG states, saved atomically every
`save_every` steps) and `best-<sha8>.pt` (the best checkpoint by validation SDR, in the shipped
format).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import yaml

from . import spectral
from .atomic import atomic_path
from .augment import StemEffects
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config
from .data import (MUSDB_LICENCE, SILENCE, ExcerptSampler, Song, accompanied_songs, folder_licences, musdb_songs,
                   stem_folder_songs)
from .errors import StemsError
from .model import MaskNet
from .report import training_curves
from .separator import Separator
from .torch_engine import TorchEngine

LOSSES = ("sdr", "magnitude_l1")


def mask_loss(logits: torch.Tensor, stem_specs: torch.Tensor, kind: str, accompanied: torch.Tensor | None = None,
              vocals: int | None = None, mix_spec: torch.Tensor | None = None) -> torch.Tensor:
    """
    Args:
        logits: (batch, sources, channels, bins, frames).
        stem_specs: (batch, sources, channels, bins, frames) the stems' complex STFT of the same
            frames.
        mix_spec: (batch, channels, bins, frames) the complex STFT of the mix the masks apply to;
            default: the stems' sum (another when a codec altered the mix: the targets stay the
            stems).
        accompanied: (batch,) bool, the examples whose non-vocal stems are one label (an
            accompaniment): they are scored as two stems, vocals (source `vocals`) and the sum of
            the others' masks against the accompaniment; each example weighs the same.
    `sdr` is minus each stem's SDR in the STFT domain over the excerpt (masked mix against the
    stem, in dB, as BSSEval scores a frame), averaged over examples and stems; a floor 30 dB below
    the mix keeps a silent stem's term finite. (museval scores MUSDB as images, where the SDR's
    target is the stem itself: no distortion filter is forgiven, unlike BSSEval's sources mode.)
    `magnitude_l1` is the L1 distance of the masked mix magnitude to each stem's (the low-latency
    model's loss).
    """
    masks = torch.softmax(logits, dim=1)
    mix_spec = stem_specs.sum(dim=1) if mix_spec is None else mix_spec
    if kind == "magnitude_l1":
        if accompanied is not None and bool(accompanied.any()):
            raise StemsError("train.accompanied_dirs needs the sdr loss")
        mix_mag = mix_spec.abs()
        return (masks * mix_mag[:, None] - stem_specs.abs()).abs().mean() / (mix_mag.mean() + 1e-8)
    if kind == "sdr":
        per_example = _sdr_terms(masks, stem_specs, mix_spec).mean(dim=1)  # (batch,)
        if accompanied is None or not bool(accompanied.any()):
            return per_example.mean()
        others = [source for source in range(masks.shape[1]) if source != vocals]
        rows = accompanied.nonzero()[:, 0]
        grouped = _sdr_terms(torch.stack([masks[rows][:, others].sum(dim=1), masks[rows, vocals]], dim=1),
                             torch.stack([stem_specs[rows][:, others].sum(dim=1), stem_specs[rows, vocals]], dim=1),
                             mix_spec[rows])
        return per_example.index_put((rows,), grouped.mean(dim=1)).mean()
    raise StemsError(f"unknown loss '{kind}' (choose from {', '.join(LOSSES)})")


def _sdr_terms(masks: torch.Tensor, stem_specs: torch.Tensor, mix_spec: torch.Tensor) -> torch.Tensor:
    """Minus each stem's SDR of the masked mix (batch, sources), from masks and the stems'
    complex STFT (batch, sources, channels, bins, frames) and the mix's (batch, channels, bins,
    frames)."""
    # |m X - S|² = m² |X|² - 2 m Re(X* S) + |S|²: real arithmetic on terms without gradient,
    # half the time of the complex form's forward and backward
    mix_spec = mix_spec[:, None]
    mix_power = mix_spec.real.square() + mix_spec.imag.square()
    cross = mix_spec.real * stem_specs.real + mix_spec.imag * stem_specs.imag
    energy = (stem_specs.real.square() + stem_specs.imag.square()).sum(dim=(2, 3, 4))  # (batch, sources)
    floor = 1e-3 * mix_power.sum(dim=(2, 3, 4)) + 1e-8  # (batch, 1)
    error = (masks * (masks * mix_power - 2 * cross)).sum(dim=(2, 3, 4)) + energy
    return 10 * torch.log10((error.clamp(min=0) + floor) / (energy + floor))


def band_limited(stem_specs: torch.Tensor, band_hz: torch.Tensor, config: Config) -> torch.Tensor:
    """`stem_specs` (batch, sources, channels, bins, frames) with every bin above its example's
    band (batch,) in Hz set to zero: such bins then count for nothing in `mask_loss` (neither the
    error nor the stem's energy), and a mix summed from them is cut to the band."""
    frequencies = torch.arange(config.stft.n_bins, device=stem_specs.device) * (config.stft.sample_rate / config.stft.n_fft)
    inside = frequencies <= band_hz.to(stem_specs.device)[:, None]  # (batch, bins)
    return stem_specs * inside[:, None, None, :, None]


def stft_tensor(samples: np.ndarray | torch.Tensor, config: Config, whole: bool = False) -> torch.Tensor:
    """`spectral.stft_frames` (or `spectral.stft` of a whole signal) as a complex torch tensor."""
    array = samples.numpy() if isinstance(samples, torch.Tensor) else samples
    array = np.ascontiguousarray(array, dtype=np.float32)
    return torch.from_numpy(spectral.stft(array, config.stft) if whole else spectral.stft_frames(array, config.stft))


def validate(model: MaskNet, config: Config, songs: list[Song]) -> dict:
    """Median over songs of each stem's SDR, for soft and binary masks (`train.validation` says
    which SDR: BSSEval v4's median over 1-s frames, or the quick whole-signal one, uSDR), and of the
    two-stem split's (vocals / no_vocals, as `--two-stems vocals` writes it) under "two_stems".
    The songs' stems are in `config.model.sources` order."""
    from .evaluate import score_track, usdr

    model.eval()
    separator = Separator(TorchEngine(model, config.stft, device=str(_device_of(model))))
    sources = config.model.sources
    pair = ("vocals", "no_vocals") if "vocals" in sources else ()
    result = {}
    for mask in ("soft", "binary"):
        scores = {s: [] for s in (*sources, *pair)}
        for song in songs:
            stems = np.asarray(song.stems, dtype=np.float32)
            estimates = separator.separate(stems.sum(axis=0), config.stft.sample_rate, mask=mask)
            references = dict(zip(sources, stems))
            if pair:  # the two-stem split (karaoke): vocals and the sum of the rest
                references["no_vocals"] = stems.sum(axis=0) - references["vocals"]
                estimates["no_vocals"] = sum(estimates[s] for s in sources if s != "vocals")
            present = [s for s in scores if np.abs(references[s]).max() > SILENCE]
            for group in (set(sources), set(pair)):  # BSSEval scores each split as one set of sources
                chosen = [s for s in present if s in group]
                if not chosen:
                    continue
                if config.train.validation == "bsseval":
                    values = score_track({s: references[s] for s in chosen}, {s: estimates[s] for s in chosen})
                    for s in chosen:
                        scores[s].append(values[s]["SDR"])
                else:
                    for s in chosen:
                        scores[s].append(usdr(references[s], estimates[s]))
        per_stem = {s: float(np.nanmedian(scores[s])) for s in sources if scores[s]}
        result[mask] = per_stem | {"mean": float(np.mean(list(per_stem.values())))}
        if pair and all(scores[s] for s in pair):
            two = {s: float(np.nanmedian(scores[s])) for s in pair}
            result[mask]["two_stems"] = two | {"mean": float(np.mean(list(two.values())))}
    result["loss"] = _validation_loss(model, config, songs)
    model.train()
    return result


def _validation_loss(model: MaskNet, config: Config, songs: list[Song]) -> float:
    """The training loss on whole validation songs, one pass each (mean over songs)."""
    losses = []
    with torch.no_grad():
        for song in songs:
            specs = stft_tensor(np.asarray(song.stems, dtype=np.float32), config, whole=True).to(_device_of(model))
            mix_mag = torch.nn.functional.pad(specs.sum(dim=0).abs(), (model.past, model.lookahead))
            logits = model(mix_mag[None])
            losses.append(mask_loss(logits, specs[None], config.train.loss).item())
    return float(np.mean(losses))


def _device_of(model: MaskNet) -> torch.device:
    return next(model.parameters()).device


def _atomic_save(payload: dict, path: Path) -> None:
    with atomic_path(path) as temporary:  # disk full, interrupt: the previous save stays whole
        torch.save(payload, temporary)


class _SamplerStream(torch.utils.data.IterableDataset):
    """Endless batches from a copy of `sampler` per DataLoader worker, seeded by (seed, worker id)."""

    def __init__(self, sampler: ExcerptSampler, size: int, seed: tuple[int, ...]):
        self.sampler, self.size, self.seed = sampler, size, seed

    def __iter__(self):
        sampler = copy.copy(self.sampler)
        worker = torch.utils.data.get_worker_info().id
        sampler.rng = np.random.default_rng([*self.seed, worker])
        if sampler.effects is not None:
            sampler.effects = copy.copy(sampler.effects)
            sampler.effects.rng = np.random.default_rng([*self.seed, worker, 1])
        while True:
            yield _tensors(sampler.draw(self.size))


def _tensors(batch: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(array) for array in batch)


def excerpt_batches(sampler: ExcerptSampler, size: int, workers: int,
                    seed: tuple[int, ...]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Training batches, as `ExcerptSampler.draw` gives them (stems, each example's band, which
    examples are accompanied songs'): drawn from `sampler` itself with no
    workers, else by `workers` processes ahead of time, each with its own stream seeded by `seed`
    and its worker id (a resumed run draws new streams: `seed` holds the step it resumed at)."""
    if workers == 0:
        while True:
            yield _tensors(sampler.draw(size))
    loader = torch.utils.data.DataLoader(_SamplerStream(sampler, size, seed), batch_size=None,
                                         num_workers=workers, prefetch_factor=4)
    yield from loader


def _update_average(average: MaskNet, model: MaskNet, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model for every float parameter and buffer;
    integer buffers (BatchNorm's batch count) are copied."""
    with torch.no_grad():
        for kept, current in zip(average.state_dict().values(), model.state_dict().values()):
            if kept.is_floating_point():
                kept.lerp_(current, 1 - decay)
            else:
                kept.copy_(current)


def init_checkpoint(config: Config) -> tuple[dict[str, torch.Tensor], dict]:
    """`train.init`'s weights (normalisation included) and what it was trained on (its card's
    training: data, licences, steps and, where it was fine-tuned too, its own init), for the card
    of a run that starts from it: a fine-tuned model lists every source it learnt from.

    Raises:
        StemsError: the checkpoint cannot be read, or its network or STFT is not the one `config`
            describes.
    """
    trained, stft, card = load_checkpoint(config.train.init)
    if not isinstance(trained, MaskNet) or trained.config != config.model or stft != config.stft:
        raise StemsError(f"{card['path']}: train.init must be a single network with this run's model and stft settings")
    stage = {"checkpoint": Path(card["path"]).name, "sha256": card["sha256"], **card.get("training", {})}
    return trained.state_dict(), stage


def _init_normalisation(model: MaskNet, sampler: ExcerptSampler, config: Config) -> None:
    """Per-bin mean and 1/std of log-magnitudes over a few batches of training mixes."""
    mags = []
    for _ in range(8):
        mix = sampler.batch(config.train.batch_size).sum(axis=1)
        mags.append(stft_tensor(mix, config).abs())
    logs = torch.log(torch.cat(mags) + 1e-5).transpose(0, 2).reshape(config.stft.n_bins, -1)
    with torch.no_grad():
        model.input_mean.copy_(logs.mean(dim=1, keepdim=True))
        model.input_scale.copy_(1 / (logs.std(dim=1, keepdim=True) + 1e-3))


def data_licences(config: Config) -> dict[str, str]:
    """Every training source of `config` with its licence, for the checkpoint's card."""
    cfg = config.train
    stated = dict(item.split("=", 1) for item in cfg.licences)
    licences = {cfg.musdb_root: MUSDB_LICENCE} if cfg.musdb_root else {}
    return licences | {folder: folder_licences(folder, stated) for folder in cfg.stem_folders}


def load_training_songs(config: Config, skipped: list[str]) -> tuple[list[Song], list[Song], list[Song], list[Song]]:
    """(training songs, rendered training songs, accompanied training songs, validation songs)
    with `config.model.sources`;
    unreadable songs are appended to `skipped`. Validation songs are MUSDB18's valid split: none
    without MUSDB18."""
    bands = config.train.band_hz
    cache = Path(config.train.cache_dir)
    sources = config.model.sources
    train_songs: list[Song] = []
    valid_songs: list[Song] = []
    if config.train.musdb_root:
        train_songs += musdb_songs(config.train.musdb_root, "train", cache, skipped=skipped, sources=sources)
        valid_songs = musdb_songs(config.train.musdb_root, "valid", cache, skipped=skipped, sources=sources)
    for folder in config.train.stem_dirs:
        train_songs += stem_folder_songs(folder, cache, config.stft.sample_rate, skipped, sources, bands.get(folder, math.inf))
    rendered = [song for folder in config.train.rendered_dirs
                for song in stem_folder_songs(folder, cache, config.stft.sample_rate, skipped, sources, bands.get(folder, math.inf))]
    accompanied = [song for folder in config.train.accompanied_dirs
                   for song in accompanied_songs(folder, cache, config.stft.sample_rate, skipped, sources,
                                                 bands.get(folder, math.inf))]
    if not train_songs and not rendered:
        raise StemsError("no training data: set train.musdb_root, train.stem_dirs or train.rendered_dirs")
    return train_songs, rendered, accompanied, valid_songs


def excerpt_sampler(config: Config, songs: list[Song], rendered: list[Song], excerpt_samples: int,
                    seed: int, accompanied: list[Song] = ()) -> ExcerptSampler:
    """The excerpt draws `config.train` describes (remixing, gains, speed, rendered share and
    balance, missing stems, vocal levels, accompanied share, augmentation), over `songs`, `rendered` and
    `accompanied` songs.

    Raises:
        StemsError: train.vocals_level_db without a vocals stem.
    """
    cfg = config.train
    if cfg.vocals_level_db and "vocals" not in config.model.sources:
        raise StemsError("train.vocals_level_db needs a vocals stem in model.sources")
    level = ((config.model.sources.index("vocals"), *cfg.vocals_level_db, cfg.vocals_level_share)
             if cfg.vocals_level_db else None)
    effects = StemEffects(cfg.augment, config.model.sources, config.stft.sample_rate, [seed, 1]) if cfg.augment else None
    return ExcerptSampler(songs, excerpt_samples, seed, cfg.remix_probability, cfg.gain_range_db, config.stft.sample_rate,
                          cfg.speed_range, cfg.song_weight_cap_s, rendered, cfg.rendered_share, cfg.fill_missing, level,
                          cfg.balance_rendered, accompanied, cfg.accompanied_share, effects)


def _init_distributed(device: str) -> tuple[int, int]:
    """(rank, world size); joins the process group that torchrun describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return (torch.distributed.get_rank(), world) if world > 1 else (0, 1)


def _gather(value, world: int) -> list:
    if world == 1:
        return [value]
    gathered = [None] * world
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def _truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines of steps after the last save: a resumed run writes them again."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= last_step]
        path.write_text("".join(line + "\n" for line in kept))


@dataclass
class TrainResult:
    checkpoint: Path | None  # the best (or, without validation data, the last) checkpoint; None off rank 0
    model: MaskNet  # the final weights (their moving average with train.ema_decay)
    skipped: list[str]  # songs that could not be read


def train(config: Config, run_dir: Path, resume: bool = False, device: str = "cpu", progress=None) -> TrainResult:
    """Train (or resume) a run.

    Under torchrun every process trains on its own random excerpts (seed + rank) and DDP averages
    the gradients, so the weights stay identical across ranks; only rank 0 writes.
    """
    cfg = config.train
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rank, world = _init_distributed(device)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    writer = rank == 0
    state_path = run_dir / "state.pt"
    resuming = resume and state_path.exists()
    initial, stage = init_checkpoint(config) if cfg.init else (None, None)  # a bad init fails before any output
    pretraining = {"init": stage} if cfg.init else {}
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    skipped: list[str] = []
    train_songs, rendered_songs, accompanied, valid_songs = load_training_songs(config, skipped)
    if config.train.loss not in LOSSES:
        raise StemsError(f"unknown loss '{config.train.loss}' (choose from {', '.join(LOSSES)})")
    if config.train.validation not in ("bsseval", "quick"):
        raise StemsError(f"unknown train.validation '{config.train.validation}' (choose from bsseval, quick)")
    model = MaskNet(config.model, config.stft.n_bins).to(device)
    excerpt = (cfg.excerpt_frames + 2 * model.context - 1) * config.stft.hop_length + config.stft.n_fft
    sampler = excerpt_sampler(config, train_songs, rendered_songs, excerpt, cfg.seed + 1000 * rank, accompanied)
    vocals = config.model.sources.index("vocals") if "vocals" in config.model.sources else None
    # An epoch: as many excerpts as fit end to end in the training audio.
    epoch_examples = sum(s.samples for s in sampler.songs) / (cfg.excerpt_frames * config.stft.hop_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, min(500, cfg.steps // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)))
    step, best = 0, {"score": -math.inf, "path": None}
    average = None  # the EMA model when train.ema_decay > 0
    log_path = run_dir / "log.jsonl"
    if resuming:
        state = torch.load(state_path, map_location=device, weights_only=True)
        try:
            model.load_state_dict(state["model"], strict=True)
        except RuntimeError as error:
            raise StemsError(f"{state_path}: saved model does not fit this config ({str(error).splitlines()[0]})") from None
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        samplers = json.loads(state["sampler"])
        samplers = [samplers] if isinstance(samplers, dict) else samplers  # runs saved before DDP support
        if len(samplers) != world:
            raise StemsError(f"{state_path}: saved by {len(samplers)} processes, resumed with {world}")
        sampler.set_state(samplers[rank])
        torch.set_rng_state(state["torch_rng"])
        step, best = state["step"], json.loads(state["best"])
        if writer:
            _truncate_log(log_path, step)
    elif initial is not None:
        model.load_state_dict(initial)
    else:
        _init_normalisation(model, sampler, config)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model  # broadcasts rank 0's weights
    if cfg.ema_decay > 0:  # after the broadcast: every rank starts its average from rank 0's weights
        average = copy.deepcopy(model)
        if resuming and "average" in state:
            average.load_state_dict(state["average"])
    scored = model if average is None else average  # what validation scores and checkpoints hold
    log = open(log_path, "a") if writer else None
    model.train()
    started, started_step = time.time(), step
    batches = excerpt_batches(sampler, cfg.batch_size, cfg.workers, (cfg.seed, rank, step))
    while step < cfg.steps:
        stems, band_hz, accompanied_examples, mix_errors = next(batches)
        stem_specs = stft_tensor(stems, config).to(device)  # (B, S, C, F, T)
        scored_specs = band_limited(stem_specs, band_hz, config) if band_hz.isfinite().any() else stem_specs
        scored_mix = scored_specs.sum(dim=1)  # (B, C, F, T)
        heard = scored_mix if cfg.band_limited_mix == "limited" or scored_specs is stem_specs else stem_specs.sum(dim=1)
        if mix_errors.any():  # a codec's error: in the mix the network hears and the masks apply to
            error_specs = stft_tensor(mix_errors, config).to(device)  # zero in band-limited examples
            heard, scored_mix = heard + error_specs, scored_mix + error_specs
        logits = net(heard.abs())
        inner = slice(model.past, stem_specs.shape[-1] - model.lookahead)
        loss = mask_loss(logits, scored_specs[..., inner], cfg.loss, accompanied_examples.to(device), vocals,
                         scored_mix[..., inner])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        if average is not None:
            _update_average(average, model, cfg.ema_decay)
        step += 1
        samplers = _gather(sampler.state(), world) if step % cfg.save_every == 0 or step == cfg.steps else None
        if not writer:
            continue
        rate = (step - started_step) * cfg.batch_size * world / (time.time() - started)
        epoch = step * cfg.batch_size * world / epoch_examples
        log.write(json.dumps({"step": step, "epoch": round(epoch, 3), "loss": round(loss.item(), 6),
                              "lr": schedule.get_last_lr()[0], "examples_per_s": round(rate, 2)}) + "\n")
        if progress is not None:
            progress(step, cfg.steps, loss.item(), rate, epoch)
        if valid_songs and (step % cfg.validate_every == 0 or step == cfg.steps):
            scores = validate(scored, config, valid_songs)
            score = max(scores["soft"]["mean"], scores["binary"]["mean"])
            log.write(json.dumps({"step": step, "validation": scores}) + "\n")
            log.flush()
            training_curves(log_path, run_dir / "curves.png")
            if score > best["score"]:
                card = {"training": {"config": config.to_dict(), "step": step,
                                     "data": [cfg.musdb_root + " (musdb train split)", *cfg.stem_folders],
                                     "licences": data_licences(config), **pretraining},
                        "metrics": {"valid_sdr": scores, "validation": cfg.validation}}
                path = save_checkpoint(scored, config.stft, card, run_dir, "best")
                if best["path"] and best["path"] != str(path):
                    Path(best["path"]).unlink(missing_ok=True)
                best = {"score": score, "path": str(path)}
        if samplers is not None:
            log.flush()
            _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "schedule": schedule.state_dict(), "sampler": json.dumps(samplers),
                          "torch_rng": torch.get_rng_state(), "step": step, "best": json.dumps(best)}
                         | ({"average": average.state_dict()} if average is not None else {}), state_path)
    if world > 1:  # BatchNorm statistics are per rank: every rank ends with rank 0's, which it saved
        for buffer in scored.buffers():
            torch.distributed.broadcast(buffer, 0)
    if not writer:
        return TrainResult(None, scored, skipped)
    log.close()
    if not valid_songs:  # nothing to pick a best by: the final weights are the result
        card = {"training": {"config": config.to_dict(), "step": step, "data": [*cfg.stem_folders],
                             "licences": data_licences(config), **pretraining},
                "metrics": {}}
        return TrainResult(save_checkpoint(scored, config.stft, card, run_dir, "last"), scored, skipped)
    return TrainResult(Path(best["path"]) if best["path"] else None, scored, skipped)


def resolve_run(config_path: Path | None, overrides: list[str], out: Path | None, resume: Path | None) -> tuple[Config, Path]:
    """The config and run directory of a new run (file + overrides) or a resumed one (its saved
    config + overrides)."""
    from .config import load_config

    if resume is not None:
        if not (resume / "config.yaml").is_file():
            raise StemsError(f"{resume}: not a run directory (no config.yaml)")
        return load_config(resume / "config.yaml", overrides), resume
    return load_config(config_path, overrides), out or Path("runs") / (Path(config_path).stem if config_path else "default")


def main(argv: list[str] | None = None) -> None:
    """`python -m stems.train CONFIG [--set k=v ...] [--out DIR | --resume DIR] [--device cpu|cuda]`,
    the entry point for torchrun: `torchrun --nproc-per-node 2 -m stems.train configs/default.yaml --out runs/x`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stems.train")
    parser.add_argument("config", nargs="?")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    config, run_dir = resolve_run(args.config, args.overrides, args.out, args.resume)
    result = train(config, run_dir, resume=args.resume is not None, device=args.device)
    if result.checkpoint is not None:
        print(f"run directory: {run_dir}; checkpoint: {result.checkpoint}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
