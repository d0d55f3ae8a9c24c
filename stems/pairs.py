"""Training pairs from a mix and some of its stems: align each stem to the mix, fit its gain,
derive the stem nobody gave, check that the stems really make up the mix, and write the song
folder `<out_dir>/{<source>,mixture}.wav` that `data.stem_folder_songs` reads. The sources are a
config's `model.sources` (by default drums, bass, other, vocals).

Offsets are whole samples at 44.1 kHz. An offset d > 0 means the stem file is late: its sample
n + d lines up with mix sample n (d < 0: it starts early).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from .audio import StemWriter, load, padded_slice
from .config import ModelConfig, STFTConfig
from .data import STEM_EXTENSIONS
from .errors import StemsError

SAMPLE_RATE = STFTConfig().sample_rate
INSTRUMENTAL = "instrumental"
SEARCH_SECONDS = 60.0  # a minute of music gives one clear peak; reading no more bounds memory
FLOOR_LAGS = SAMPLE_RATE  # at least ±1 s of lags to measure the correlation's noise floor on
# Least correlation peak, over its noise floor in robust standard deviations, that counts as a
# stem found in the mix (calibration in `_find_offset`).
MIN_PEAK_PROMINENCE = 8.0
FIT_BLOCK = 1 << 20  # samples per block when summing the normal equations in float64


@dataclass
class BuildReport:
    """What `build_pair` measured and wrote; per-stem dicts are keyed by input name.

    Attributes:
        offsets: samples at 44.1 kHz; d > 0: the stem file is late by d samples.
        gains: the factors the aligned stems were multiplied by.
        stem_snr_db: the fitted stem's energy over that of the residual (mix - sum of the fitted
            given stems).
        residual_snr_db: the mix's energy over the residual's. With a stem derived, that stem is
            the residual, so this is the mix over the derived stem.
        derived: output stems computed as the residual.
    """

    out_dir: Path
    offsets: dict[str, int]
    gains: dict[str, float]
    stem_snr_db: dict[str, float]
    residual_snr_db: float
    derived: list[str]


def csv_columns(sources: tuple[str, ...] = ModelConfig.sources) -> tuple[str, ...]:
    """The columns a `build_from_csv` CSV may have."""
    return ("song", "mix", *sources, INSTRUMENTAL)


def build_pair(mix: Path, stems: dict[str, Path], out_dir: Path, min_residual_snr_db: float = 10.0,
               max_offset_s: float = 2.0, sources: tuple[str, ...] = ModelConfig.sources) -> BuildReport:
    """Align, gain-match and check `stems` against `mix`, then write the song folder `out_dir`.

    Stems that are not given are derived as mix - sum of the fitted given ones when that is
    unambiguous: the one missing stem of `sources`; `other` when more are missing and `other` is
    one of the sources (so vocals only gives vocals plus other = everything else); vocals when
    only `instrumental` is given. Without `other` among the sources, only a single missing stem is
    derived: nothing says which of several missing ones the residual is.
    `instrumental` (everything but vocals) is written as `other`, excludes the other sources and
    needs both `other` and `vocals` among them. Stems left unknown (e.g. drums and bass) are not
    written, and training reads a missing stem as silence: such songs teach that drums and bass
    may sound inside `other`.

    When nothing is derived, the written stems must add up to the mix within
    `min_residual_snr_db` (this catches e.g. a live acapella against a studio mix). When a stem
    is derived it absorbs the residual, so instead every given stem's correlation peak must stand
    out from chance (MIN_PEAK_PROMINENCE). Nothing is written when a check fails; files are written
    under temporary names and renamed only when all are complete.

    Args:
        mix: the mixture; any file `audio.load` reads (resampled to 44.1 kHz, mono made stereo).
        stems: names among `sources` and instrumental, mapped to files.
        min_residual_snr_db: the least mix-to-residual ratio accepted when nothing is derived.
        max_offset_s: the largest misalignment searched for, either way.
        sources: the stems of a training song.

    Raises:
        StemsError: unusable input, stems that do not match the mix, or a write failure.
    """
    mix, out_dir = Path(mix), Path(out_dir)
    stems = {name: Path(path) for name, path in stems.items()}
    if max_offset_s < 0:
        raise StemsError(f"{mix}: max_offset_s must be at least 0, got {max_offset_s}")
    derived = _stem_to_derive(mix, set(stems), sources)
    _check_out_dir(out_dir, [_output_name(name) for name in stems] + ([derived] if derived else []), sources)

    mix_audio = _stereo(load(mix, SAMPLE_RATE))  # (2, samples)
    mix_energy = _energy(mix_audio)
    if mix_energy == 0:
        raise StemsError(f"{mix}: the mix is silent")
    loaded = {name: _stereo(load(path, SAMPLE_RATE)) for name, path in stems.items()}
    offsets, prominence = _align(mix_audio, loaded, round(max_offset_s * SAMPLE_RATE))
    fitted = {name: padded_slice(loaded.pop(name), offsets[name], offsets[name] + mix_audio.shape[-1]) for name in stems}  # (2, samples)
    gains = dict(zip(fitted, _joint_gains(mix_audio, list(fitted.values()))))
    residual = mix_audio.copy()
    for name, stem in fitted.items():
        stem *= np.float32(gains[name])
        residual -= stem
    residual_energy = _energy(residual)
    residual_snr_db = _db(mix_energy, residual_energy)
    stem_snr_db = {name: _db(_energy(stem), residual_energy) for name, stem in fitted.items()}

    if derived is None and residual_snr_db < min_residual_snr_db:
        weakest = min(stem_snr_db, key=stem_snr_db.get)
        raise StemsError(
            f"{mix}: residual SNR {residual_snr_db:.1f} dB is below {min_residual_snr_db:g} dB: the stems do not "
            f"add up to this mix (weakest fit: {weakest}, {stem_snr_db[weakest]:.1f} dB); another version or a wrong file?")
    if derived is not None:
        for name, value in prominence.items():
            if value < MIN_PEAK_PROMINENCE:
                raise StemsError(
                    f"{stems[name]}: not found in {mix} (correlation peak {value:.1f} noise deviations, need "
                    f"{MIN_PEAK_PROMINENCE:g}); another version or a wrong file? Deriving {derived} needs a match")

    tracks = {_output_name(name): stem for name, stem in fitted.items()}
    if derived is not None:
        tracks[derived] = residual
    tracks["mixture"] = mix_audio
    _write_all(out_dir, tracks)
    return BuildReport(out_dir, offsets, {k: float(v) for k, v in gains.items()}, stem_snr_db, residual_snr_db,
                       [derived] if derived else [])


def build_from_csv(csv_path: Path, out_root: Path, sources: tuple[str, ...] = ModelConfig.sources,
                   **kwargs) -> tuple[list[BuildReport], list[tuple[str, str]]]:
    """Build every song of a CSV with header `song,mix,<source>...,instrumental` (`csv_columns`;
    by default `song,mix,drums,bass,other,vocals,instrumental`).

    Empty cells are stems not given; relative paths are relative to the CSV's folder (UTF-8, a
    byte-order mark is fine). Song `s` goes to `out_root/s/`; `sources` and `kwargs` go to
    `build_pair`.

    Returns:
        (reports of the songs built, (song or "line N", error) for each row that failed).

    Raises:
        StemsError: the CSV itself cannot be read or its header is wrong.
    """
    csv_path, out_root = Path(csv_path), Path(out_root)
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            rows = list(reader)
    except OSError as error:
        raise StemsError(f"{csv_path}: cannot read ({error.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise StemsError(f"{csv_path}: not a readable CSV ({error})") from None
    known = csv_columns(sources)
    unknown = [c for c in columns if c not in known]
    if unknown or not {"song", "mix"} <= set(columns):
        raise StemsError(f"{csv_path}: the header must name song, mix and some of {', '.join(known[2:])}"
                         + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    base = csv_path.parent
    reports: list[BuildReport] = []
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        cells = {c: (row.get(c) or "").strip() for c in known}
        song = cells["song"]
        try:
            # a name with a slash or ".." would write outside out_root
            if not song or song in (".", "..") or Path(song).name != song:
                raise StemsError(f"{csv_path}:{number}: song must be a plain folder name, got {song!r}")
            if song in seen:
                raise StemsError(f"{csv_path}:{number}: song {song!r} appears twice")
            seen.add(song)
            if not cells["mix"]:
                raise StemsError(f"{csv_path}:{number}: no mix given for {song!r}")
            stems = {name: base / cells[name] for name in known[2:] if cells[name]}
            reports.append(build_pair(base / cells["mix"], stems, out_root / song, sources=sources, **kwargs))
        except StemsError as error:
            errors.append((song or f"line {number}", str(error)))
    return reports, errors


def _stem_to_derive(mix: Path, given: set[str], sources: tuple[str, ...]) -> str | None:
    """The output stem computed as the residual, or None (see `build_pair` for the rules)."""
    unknown = sorted(given - set(sources) - {INSTRUMENTAL})
    if unknown:
        raise StemsError(f"{mix}: unknown stem name {', '.join(unknown)} (known: {', '.join((*sources, INSTRUMENTAL))})")
    if not given:
        raise StemsError(f"{mix}: no stems given")
    if INSTRUMENTAL in given:
        if not {"other", "vocals"} <= set(sources):
            raise StemsError(f"{mix}: instrumental is written as other and needs sources with other and vocals "
                             f"(these are {', '.join(sources)})")
        accompaniment = [s for s in sources if s != "vocals"]
        if given & set(accompaniment):
            raise StemsError(f"{mix}: give either instrumental or {'/'.join(accompaniment)}, not both")
        return None if "vocals" in given else "vocals"
    missing = [s for s in sources if s not in given]
    if len(missing) <= 1:
        return missing[0] if missing else None
    if "other" in missing:
        return "other"
    raise StemsError(f"{mix}: cannot derive {' and '.join(missing)} together: give all but one of them")


def _output_name(name: str) -> str:
    return "other" if name == INSTRUMENTAL else name


def _check_out_dir(out_dir: Path, names: list[str], sources: tuple[str, ...]) -> None:
    """Refuse a folder holding a stem this build would not replace: training would add it in."""
    if out_dir.exists() and not out_dir.is_dir():
        raise StemsError(f"{out_dir}: exists and is not a folder")
    if not out_dir.is_dir():
        return
    targets = {f"{name}.wav" for name in names}
    stale = sorted(p.name for p in out_dir.iterdir()
                   if p.stem in sources and p.suffix.lower() in STEM_EXTENSIONS and p.name not in targets)
    if stale:
        raise StemsError(f"{out_dir}: holds {', '.join(stale)}, which this build would not replace; "
                         "remove it or choose another folder")


def _stereo(audio: np.ndarray) -> np.ndarray:
    """(1 or 2, samples) -> (2, samples)."""
    return audio if audio.shape[0] == 2 else np.repeat(audio, 2, axis=0)


def _align(mix: np.ndarray, stems: dict[str, np.ndarray], max_lag: int) -> tuple[dict[str, int], dict[str, float]]:
    """Offsets and peak prominences (see `_find_offset`) of (channels, samples) stems in the mix."""
    found = {name: _find_offset(mix, stem, max_lag) for name, stem in stems.items()}
    if len(stems) > 1:
        # The other stems in the mix can pull a peak off by a sample or more (a bass locked to the
        # kick): search again against the mix less the other given stems, as first aligned.
        head = mix[:, : int(SEARCH_SECONDS * SAMPLE_RATE)]
        parts = {name: padded_slice(stem, found[name][0], found[name][0] + head.shape[-1]) for name, stem in stems.items()}
        for part, gain in zip(parts.values(), _joint_gains(head, list(parts.values()))):
            part *= np.float32(gain)
        explained = sum(parts.values())
        found = {name: _find_offset(head - explained + parts[name], stem, max_lag) for name, stem in stems.items()}
    return {name: lag for name, (lag, _) in found.items()}, {name: peak for name, (_, peak) in found.items()}


def _find_offset(target: np.ndarray, stem: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The lag d in [-max_lag, max_lag] best lining stem[n + d] up with target[n] (both (channels,
    samples); mono downmixes of their first SEARCH_SECONDS), and the peak's height over the
    correlation's noise floor in robust standard deviations (0 for a silent stem)."""
    window = int(SEARCH_SECONDS * SAMPLE_RATE)
    span = max(max_lag, FLOOR_LAGS)
    target_mono = target[:, :window].mean(axis=0)
    stem_mono = stem[:, :window + span].mean(axis=0)
    # long enough that no lag within ±span wraps around, however short the files
    size = sfft.next_fast_len(target_mono.size + stem_mono.size + 2 * span)
    cross = sfft.rfft(stem_mono, size) * np.conj(sfft.rfft(target_mono, size))
    magnitude = np.abs(cross)
    if not magnitude.any():
        return 0, 0.0
    # Whitening (PHAT, regularised so near-empty bands add no noise) gives every band a say: the
    # peak is a few samples wide even for a bass, and stands out far more than without it
    # (measured on MUSDB stems: chance peaks stay below 7.1, real ones reach 9 to over 100).
    cross /= magnitude + 0.1 * magnitude.mean()
    corr = np.abs(sfft.irfft(cross, size))
    lags = np.arange(-span, span + 1)
    values = corr[lags % size]  # negative lags sit at the end of the circular result
    searched = np.abs(lags) <= max_lag
    best = int(np.argmax(np.where(searched, values, -1.0)))
    floor = np.median(values) / 0.6745  # a Gaussian's median |x| is 0.6745 sigma
    return int(lags[best]), (float(values[best] / floor) if floor > 0 else math.inf)


def _joint_gains(mix: np.ndarray, stems: list[np.ndarray]) -> np.ndarray:
    """Least-squares g minimising |mix - sum_i g_i stems[i]|², jointly, so stems that share
    frequencies do not each claim the shared part. mix and stems[i]: (channels, samples).
    Returns (len(stems),); a silent stem gets 0."""
    gram = np.zeros((len(stems), len(stems)))
    projection = np.zeros(len(stems))
    for start in range(0, mix.shape[-1], FIT_BLOCK):
        block = np.stack([s[:, start:start + FIT_BLOCK].ravel() for s in stems]).astype(np.float64)
        gram += block @ block.T
        projection += block @ mix[:, start:start + FIT_BLOCK].ravel().astype(np.float64)
    return np.linalg.lstsq(gram, projection, rcond=None)[0]


def _energy(audio: np.ndarray) -> float:
    return float(np.einsum("ij,ij->", audio, audio, dtype=np.float64))


def _db(signal_energy: float, noise_energy: float) -> float:
    if noise_energy == 0:
        return math.inf
    if signal_energy == 0:
        return -math.inf
    return 10 * math.log10(signal_energy / noise_energy)


def _write_all(out_dir: Path, tracks: dict[str, np.ndarray]) -> None:
    """Write `out_dir/{name}.wav` (float32) for each (channels, samples) track: all under
    temporary names first, renamed only once every one is complete; temporaries go on failure."""
    writers: list[StemWriter] = []
    try:
        for name, audio in tracks.items():
            writers.append(StemWriter(out_dir / f"{name}.wav", SAMPLE_RATE, audio.shape[0], "wav", float_output=True))
            writers[-1].write(audio)
        for writer in list(writers):
            writer.commit()
            writers.remove(writer)
    finally:
        for writer in writers:
            writer.abort()
