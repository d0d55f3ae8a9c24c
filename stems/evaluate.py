"""Scoring the SiSEC 2018 way: BSSEval v4 (museval) over 1-second windows, median over windows
per track and stem, then median over tracks; and the SDX23 way: uSDR, one SDR over the whole
track, mean over tracks. Oracle masks as baselines."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from . import spectral
from .atomic import atomic_path
from .config import STFTConfig
from .errors import StemsError
from .masks import binary_targets, ratio_targets
from .reconstruct import apply_mask

METRICS = ("SDR", "ISR", "SIR", "SAR")  # the order museval.evaluate returns them in
USDR_EPS = 1e-7  # SDX23's delta: a silent estimate of a silent stem scores 0 dB, not NaN
SCORES = (*METRICS, "uSDR")  # what score_track gives each stem; a cached track lacking one is scored again


def usdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """The SDR of the Sound Demixing Challenge 2023 (and MDX 2021), "uSDR": one ratio over the
    whole track, every channel and sample summed, where BSSEval takes the median over 1-s frames:
    10·log10((Σ s² + ε) / (Σ (s − ŝ)² + ε)), ε = USDR_EPS.

    Args:
        reference, estimate: (channels, samples) of one stem, the same shape.
    """
    s, s_hat = reference.astype(np.float64), estimate.astype(np.float64)
    return float(10 * np.log10((np.sum(s ** 2) + USDR_EPS) / (np.sum((s - s_hat) ** 2) + USDR_EPS)))


def score_track(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray],
                sample_rate: int = 44100) -> dict[str, dict[str, float]]:
    """BSSEval v4 and uSDR of one track.

    Args:
        references, estimates: {stem: (channels, samples)} with the same stems and shapes.
    Returns:
        {stem: {BSSEval metric: median over 1-s windows (NaN windows, e.g. silent references,
                ignored), "uSDR": `usdr` over the whole track,
                "frames": {BSSEval metric: [value per window, None for NaN]}}}.
    """
    import museval

    names = list(references)
    ref = np.stack([references[n].T for n in names]).astype(np.float64)  # (sources, samples, channels)
    est = np.stack([estimates[n].T for n in names]).astype(np.float64)
    values = museval.evaluate(ref, est, win=sample_rate, hop=sample_rate)
    scores = {}
    with np.errstate(all="ignore"):
        for i, name in enumerate(names):
            frames = {m: values[k][i] for k, m in enumerate(METRICS)}
            scores[name] = {m: float(np.nanmedian(v)) if not np.isnan(v).all() else float("nan") for m, v in frames.items()}
            scores[name]["uSDR"] = usdr(references[name], estimates[name])
            scores[name]["frames"] = {m: [None if np.isnan(x) else float(x) for x in v] for m, v in frames.items()}
    return scores


def median_over_tracks(per_track: list[dict[str, dict[str, float]]], metric: str = "SDR") -> dict[str, float]:
    """{stem: median over tracks}, plus "mean" over stems (the SiSEC aggregation)."""
    return _over_tracks(per_track, metric, np.nanmedian)


def mean_over_tracks(per_track: list[dict[str, dict[str, float]]], metric: str = "uSDR") -> dict[str, float]:
    """{stem: mean over tracks}, plus "mean" over stems: the SDX23 aggregation, whose score is the
    mean over tracks of each track's mean over stems (the same number, summed in another order)."""
    return _over_tracks(per_track, metric, np.mean)


def _over_tracks(per_track: list[dict[str, dict[str, float]]], metric: str, reduce: Callable) -> dict[str, float]:
    stems = list(per_track[0])
    out = {s: float(reduce([t[s][metric] for t in per_track])) for s in stems}
    out["mean"] = float(np.mean([out[s] for s in stems]))
    return out


AGGREGATIONS = {"SDR": median_over_tracks, "uSDR": mean_over_tracks}  # as SiSEC 2018 and SDX23 rank


ORACLES = ("mix", "ibm", "argmax", "irm")


def oracle_masks(stem_specs: np.ndarray, kind: str) -> np.ndarray:
    """Masks computed from the true stems.

    Args:
        stem_specs: (sources, channels, bins, frames) complex STFTs of the references.
        kind: "ibm" (IBM1 of SiSEC 2018: a bin belongs to a source when its magnitude is at least
            half the mix's; masks need not sum to one), "argmax" (the competing binary masks of
            this model family: each bin to its dominant source), "irm" (IRM1: |S_i| / sum_j |S_j|).
    """
    mags = np.abs(stem_specs)
    if kind == "ibm":
        return (mags >= 0.5 * np.abs(stem_specs.sum(axis=0))).astype(np.float32)
    if kind == "argmax":
        return binary_targets(mags)
    if kind == "irm":
        return ratio_targets(mags)
    raise ValueError(f"unknown oracle '{kind}' (choose from {', '.join(ORACLES)})")


def oracle_estimates(stems: np.ndarray, names: tuple[str, ...], kind: str, stft: STFTConfig) -> dict[str, np.ndarray]:
    """(sources, channels, samples) references -> {stem: (channels, samples)} oracle estimates;
    kind "mix" is the mixture as every stem's estimate."""
    mix = stems.sum(axis=0)
    if kind == "mix":
        return {name: mix for name in names}
    specs = spectral.stft(stems, stft)
    masks = oracle_masks(specs, kind)
    waves = spectral.istft(apply_mask(specs.sum(axis=0, keepdims=True), masks), stems.shape[-1], stft)
    return {name: waves[i] for i, name in enumerate(names)}


def two_stem_references(tracks: list[tuple[str, np.ndarray]], names: tuple[str, ...],
                        stem: str) -> list[tuple[str, np.ndarray]]:
    """Tracks' references (sources, C, N) -> (2, C, N): `stem` and the mix minus it (what
    `stems separate --two-stems STEM` writes as STEM and no_STEM)."""
    index = names.index(stem)
    return [(track, np.stack([refs[index], refs.sum(axis=0) - refs[index]])) for track, refs in tracks]


def two_stem_system(estimate: Callable[[str, np.ndarray], dict], names: tuple[str, ...], stem: str):
    """A four-stem system and the same system scored as two stems: `stem`, and the sum of the
    others' estimates (for masks that sum to one, exactly what --two-stems writes). The first
    keeps each track's pair for the second, so a track scored in both tables is separated once
    (the second separates it only when the first was read from the score cache). The references
    may be either set: both have the same mix, channels and length.

    Returns:
        (four-stem estimator, two-stem estimator)."""
    kept: dict[str, dict[str, np.ndarray]] = {}

    def pair(estimates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {stem: estimates[stem], f"no_{stem}": sum(estimates[n] for n in names if n != stem)}

    def four(track: str, references: np.ndarray) -> dict[str, np.ndarray]:
        estimates = estimate(track, references)
        kept[track] = pair(estimates)
        return estimates

    def two(track: str, references: np.ndarray) -> dict[str, np.ndarray]:
        return kept.pop(track) if track in kept else pair(estimate(track, references))

    return four, two


def _score_job(job: tuple) -> tuple[str, str, dict]:
    """Worker: (system, track name, references (S, C, N), estimates {stem: (C, N)}) -> scores."""
    system, track, names, references, estimates = job
    return system, track, score_track({n: references[i] for i, n in enumerate(names)}, estimates)


def evaluate_systems(tracks: list[tuple[str, np.ndarray]], systems: dict[str, Callable[[str, np.ndarray], dict]],
                     names: tuple[str, ...], cache_dir: Path | None = None, jobs: int = 1,
                     progress: Callable[[], None] | None = None,
                     cache_keys: dict[str, str] | None = None) -> dict[str, dict[str, dict]]:
    """Score every system on every track, `jobs` tracks at a time; results are cached per
    (system, track, references) as JSON so an interrupted evaluation resumes. The entry is named
    by a digest of the track's references too: two folders holding a song of the same name (the
    song as released and remixed) never share scores.

    Args:
        tracks: (name, references (sources, channels, samples)).
        systems: system name -> estimator(track name, references) -> {stem: (C, N)}.
        cache_keys: system name -> what names its cache entries (default: the name itself);
            it must change whenever the system's outputs can.
    Returns:
        {system: {track: {stem: {metric: value}}}}.
    """
    results: dict[str, dict[str, dict]] = {s: {} for s in systems}
    pending = []
    digests = {track: _digest(references) for track, references in tracks} if cache_dir is not None else {}

    def entry(system: str, track: str) -> Path | None:
        return _cache_file(cache_dir, (cache_keys or {}).get(system, system), track, digests.get(track))

    for system, estimate in systems.items():
        for track, references in tracks:
            cached = _read_cache(entry(system, track), names)
            if cached is not None:
                results[system][track] = cached
                if progress:
                    progress()
                continue
            pending.append((system, track, names, references, estimate(track, references)))

    def store(system: str, track: str, scores: dict) -> None:
        results[system][track] = scores
        cached = entry(system, track)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as temporary:
                temporary.write_text(json.dumps(scores))
        if progress:
            progress()

    if jobs > 1 and len(pending) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            for system, track, scores in pool.map(_score_job, pending):
                store(system, track, scores)
    else:
        for job in pending:
            store(*_score_job(job))
    return results


def _digest(references: np.ndarray) -> str:
    """16 hex digits of the sha256 of a track's references (their float32 samples)."""
    return hashlib.sha256(np.ascontiguousarray(references, dtype=np.float32)).hexdigest()[:16]


def _cache_file(cache_dir: Path | None, system: str, track: str, digest: str | None) -> Path | None:
    if cache_dir is None:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{system}__{track}")
    return cache_dir / f"{safe}__{digest}.json"


def _read_cache(path: Path | None, names: tuple[str, ...]) -> dict | None:
    """A track's cached scores; None when there are none, or when they were written before
    score_track gave every metric of SCORES (e.g. uSDR): the track is then scored again."""
    if path is None or not path.is_file():
        return None
    scores = json.loads(path.read_text())
    return scores if all(metric in scores.get(name, {}) for name in names for metric in SCORES) else None


def summary_table(results: dict[str, dict[str, dict]], names: tuple[str, ...],
                  metric: str = "SDR") -> dict[str, dict[str, float]]:
    """{system: {stem: `metric` over tracks, "mean": mean over stems}}, aggregated as AGGREGATIONS
    says: SDR the median over tracks (of the median over frames), uSDR the mean over tracks."""
    return {system: AGGREGATIONS[metric]([per_track[t] for t in sorted(per_track)], metric)
            for system, per_track in results.items() if per_track}


def _one_reference(musdb_root: Path | None, stems_dir: Path | None) -> None:
    if (musdb_root is None) == (stems_dir is None):
        raise StemsError("give exactly one source of references: --musdb ROOT or --stems-dir DIR")


def reference_sources(musdb_root: Path | None, stems_dir: Path | None) -> tuple[str, ...]:
    """The stems references hold: MUSDB18's four, or those a stems folder has (the config's
    default order first, see `data.stem_folder_sources`)."""
    from .data import MUSDB_SOURCES, stem_folder_sources

    _one_reference(musdb_root, stems_dir)
    return stem_folder_sources(stems_dir) if stems_dir is not None else MUSDB_SOURCES


def reference_tracks(musdb_root: Path | None, subset: str, split: str | None, is_wav: bool,
                     stems_dir: Path | None, cache_dir: Path,
                     sources: tuple[str, ...] | None = None) -> list[tuple[str, np.ndarray]]:
    """(track name, references (sources, channels, samples)) from MUSDB18 or a stems folder,
    with `sources` in that order (None: `reference_sources`). A stem a folder's song lacks is
    silence; one MUSDB18 lacks is a StemsError."""
    from .data import musdb_songs, stem_folder_songs

    _one_reference(musdb_root, stems_dir)
    sources = sources or reference_sources(musdb_root, stems_dir)
    if stems_dir is not None:
        songs = stem_folder_songs(stems_dir, cache_dir, sources=sources)
    else:
        try:
            songs = musdb_songs(musdb_root, split or "train", cache_dir, subset=subset, is_wav=is_wav, sources=sources)
        except (StemsError, ModuleNotFoundError):  # the latter: musdb not installed, which the CLI names
            raise
        except Exception as error:  # musdb raises bare errors for wrong roots
            raise StemsError(f"{musdb_root}: cannot read MUSDB18 ({error})") from None
        if not songs:
            raise StemsError(f"{musdb_root}: no MUSDB18 tracks in subset '{subset}'" + (f" split '{split}'" if split else ""))
    return [(song.name, np.asarray(song.stems, dtype=np.float32)) for song in songs]


def estimates_key(directory: Path) -> str:
    """What names an estimates folder's cache entries: its path and every file's size and
    modification time, so outputs written there again are scored again."""
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    stats = [(str(path.relative_to(directory)), (stat := path.stat()).st_size, stat.st_mtime_ns) for path in files]
    digest = hashlib.sha256(json.dumps([str(directory.resolve()), stats]).encode()).hexdigest()[:16]
    return f"estimates-{directory.name}-{digest}"


def estimates_reader(directory: Path, names: tuple[str, ...], sample_rate: int = 44100):
    """A system that reads another separator's outputs `directory/<track>/<stem>.wav`."""
    from .audio import load

    def read(track: str, references: np.ndarray) -> dict[str, np.ndarray]:
        estimates = {}
        for name in names:
            path = directory / track / f"{name}.wav"
            if not path.is_file():
                raise StemsError(f"{path}: estimate missing for track '{track}'")
            audio = load(path, sample_rate)
            audio = audio if audio.shape[0] == references.shape[1] else np.repeat(audio[:1], references.shape[1], 0)
            length = references.shape[-1]
            estimates[name] = np.pad(audio, ((0, 0), (0, max(0, length - audio.shape[-1]))))[:, :length]
        return estimates

    return read
