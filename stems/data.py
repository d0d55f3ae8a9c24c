"""Training data: MUSDB18 through `musdb` and folders of stems, decoded once into a cache, and
random excerpts with Open-Unmix/Demucs-style augmentation (cross-song remixing, per-stem gain,
channel swap, speed change by resampling: pitch and tempo together).

A song is a float32 array (sources, channels, samples) at 44.1 kHz, its sources in the order of
the list the loader was given (a config's `model.sources`); the mix is the sum of its stems.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .atomic import atomic_path
from .audio import load, resample
from .config import ModelConfig
from .errors import StemsError

log = logging.getLogger(__name__)
STEM_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
SILENCE = 1e-4  # peak amplitude below which a stem counts as absent
MUSDB_SOURCES = ("drums", "bass", "other", "vocals")  # what a MUSDB18 track holds besides its mixture
MIXTURE_NAMES = ("mixture", "mix")  # files in a song folder that are not stems (`stems dataset build` writes mixture.wav)
ACCOMPANIMENT = "accompaniment"  # a song folder's file of every stem but the vocals, together (karaoke backing)
MUSDB_LICENCE = "MUSDB18: research and non-commercial use only"


@dataclass
class Song:
    name: str
    stems: np.ndarray  # (sources, channels, samples) float16 or float32, in the loader's source order
    band_hz: float = math.inf  # the top of the band its recordings hold (MIR-1K: 8 kHz); the stems are silent above

    @property
    def samples(self) -> int:
        return self.stems.shape[-1]


def _cache_path(cache_dir: Path, kind: str, key: str) -> Path:
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    safe = "".join(c if c.isalnum() else "_" for c in Path(key).name)[:60]
    return cache_dir / kind / f"{safe}-{digest}.npy"


def _cached(cache_dir: Path, kind: str, key: str, decode) -> np.ndarray:
    path = _cache_path(cache_dir, kind, key)
    if not path.exists():
        stems = decode().astype(np.float16)
        path.parent.mkdir(parents=True, exist_ok=True)
        # one temporary per process: DDP ranks filling a cold cache side by side each rename a
        # complete file into place (a shared temporary name let one rank rename another's half-written file)
        with atomic_path(path, path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")) as temporary:
            np.save(temporary, stems)
    return np.load(path, mmap_mode="r")


def _source_key(key: str, sources: tuple[str, ...]) -> str:
    """The cache key of a song read as `sources`: the path alone for the default list, so caches
    written before the list was configurable stay valid."""
    return key if tuple(sources) == ModelConfig.sources else f"{key}#{','.join(sources)}"


NOT_STATED = "not stated"


def folder_licences(root: str | Path, stated: dict[str, str]) -> str:
    """The licences of a stem folder's songs: from its songs.json (`stems dataset render` writes
    one, with each song's package and soundfont; so does ../shared/data/multitrack-nc), else as
    `stated` by the config for that folder, else NOT_STATED."""
    index = Path(root) / "songs.json"
    if not index.is_file():
        return stated.get(str(root), NOT_STATED)
    cards = json.loads(index.read_text())
    cards = list(cards.values()) if isinstance(cards, dict) else cards
    licences = []
    for card in cards:
        licences.append(f"{card['licence']} ({card['package']})" if "package" in card else card["licence"])
        if "soundfont" in card:
            licences.append(f"{card['soundfont']['licence']} (soundfont {card['soundfont']['package']})")
    return "; ".join(dict.fromkeys(licences))


def musdb_songs(root: str | Path, split: str, cache_dir: Path, subset: str = "train", is_wav: bool = False,
                skipped: list[str] | None = None, sources: tuple[str, ...] = ModelConfig.sources) -> list[Song]:
    """MUSDB18 tracks of `subset`/`split` ("train" or "valid") as Songs with `sources` (some of
    MUSDB_SOURCES, in any order); unreadable tracks are skipped with a warning and their errors
    appended to `skipped`.

    Raises:
        StemsError: a source MUSDB18 does not have (e.g. piano).
    """
    missing = [s for s in sources if s not in MUSDB_SOURCES]
    if missing:
        raise StemsError(f"{root}: MUSDB18 has no {', '.join(missing)} stem (it has {', '.join(MUSDB_SOURCES)}); "
                         "set train.musdb_root='' and give such stems in train.stem_dirs")
    import musdb

    database = musdb.DB(root=str(root), subsets=subset, split=split if subset == "train" else None, is_wav=is_wav)
    songs = []
    for track in database.tracks:
        def decode(track=track):
            stems = track.stems  # (5, samples, 2): mixture, drums, bass, other, vocals
            order = [track.sources[s].stem_id for s in sources]
            return stems[order].transpose(0, 2, 1)
        key = _source_key(str(Path(track.path).resolve()), sources)
        try:
            songs.append(Song(track.name, _cached(cache_dir, f"musdb-{subset}", key, decode)))
        except Exception as error:  # stempeg/ffmpeg raise many kinds for a corrupt file
            log.warning("skipping %s: %s", track.path, error)
            if skipped is not None:
                skipped.append(f"{track.path}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
    return songs


def stem_folder_songs(root: str | Path, cache_dir: Path, sample_rate: int = 44100,
                      skipped: list[str] | None = None, sources: tuple[str, ...] = ModelConfig.sources,
                      band_hz: float = math.inf) -> list[Song]:
    """Songs of a `<root>/<song>/<source>.<ext>` folder, one file per source of `sources`; a
    missing stem is silence, a file of another name is not read. Unreadable songs are skipped with
    a warning and their errors appended to `skipped`. `band_hz`: the top of the band the folder's
    recordings hold (a 16-kHz recording holds nothing above 8 kHz)."""
    root = Path(root)
    if not root.is_dir():
        raise StemsError(f"{root}: stem folder not found")
    songs = []
    for song_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {p.stem: p for p in song_dir.iterdir() if p.suffix.lower() in STEM_EXTENSIONS}
        if not any(s in files for s in sources):
            continue

        def decode(files=files):
            loaded = {s: load(files[s], sample_rate) for s in sources if s in files}
            length = max(a.shape[-1] for a in loaded.values())
            out = np.zeros((len(sources), 2, length), dtype=np.float32)
            for i, s in enumerate(sources):
                if s in loaded:
                    audio = loaded[s]
                    out[i, :, : audio.shape[-1]] = audio if audio.shape[0] == 2 else np.repeat(audio, 2, 0)
            return out

        try:
            songs.append(Song(song_dir.name, _cached(cache_dir, "folders", _source_key(str(song_dir.resolve()), sources), decode),
                              band_hz))
        except StemsError as error:
            log.warning("skipping %s: %s", song_dir, error)
            if skipped is not None:
                skipped.append(str(error))
    if not songs:
        raise StemsError(f"{root}: no usable song (expected <song>/{{{','.join(sources)}}}.wav|flac|ogg|mp3)")
    return songs


def accompanied_songs(root: str | Path, cache_dir: Path, sample_rate: int = 44100, skipped: list[str] | None = None,
                      sources: tuple[str, ...] = ModelConfig.sources, band_hz: float = math.inf) -> list[Song]:
    """Songs of a `<root>/<song>/{vocals,accompaniment}.<ext>` folder (MIR-1K: singing recorded
    apart from its karaoke backing), with `sources`' slots: the vocals in theirs, the
    accompaniment (every other stem together) in the first other slot, the rest silent.

    Raises:
        StemsError: `sources` without vocals.
    """
    if "vocals" not in sources:
        raise StemsError(f"{root}: accompanied songs need a vocals stem in model.sources")
    slot = next(index for index, source in enumerate(sources) if source != "vocals")
    read_as = tuple(ACCOMPANIMENT if index == slot else source for index, source in enumerate(sources))
    return stem_folder_songs(root, cache_dir, sample_rate, skipped, read_as, band_hz)


def stem_folder_sources(root: str | Path, order: tuple[str, ...] = ModelConfig.sources) -> tuple[str, ...]:
    """The stems a `<root>/<song>/<stem>.<ext>` folder holds (any song; mixtures aside): those of
    `order` in its order, then any others alphabetically."""
    root = Path(root)
    if not root.is_dir():
        raise StemsError(f"{root}: stem folder not found")
    found = {p.stem for song_dir in root.iterdir() if song_dir.is_dir() for p in song_dir.iterdir()
             if p.suffix.lower() in STEM_EXTENSIONS and p.stem not in MIXTURE_NAMES}
    if not found:
        raise StemsError(f"{root}: no stems found (expected <song>/<stem>.wav|flac|ogg|mp3)")
    return (*(s for s in order if s in found), *sorted(found - set(order)))


def _equal_energy_gains(song: Song, audible: np.ndarray) -> np.ndarray:
    """(sources,) gains that give every audible stem of `song` the mean energy of its audible
    stems over the whole song (1 for a silent stem)."""
    energies = np.array([float(np.square(np.asarray(song.stems[source], dtype=np.float32), dtype=np.float64).sum())
                         for source in range(song.stems.shape[0])])
    gains = np.ones(len(energies), np.float32)
    if audible.any():
        gains[audible] = np.sqrt(energies[audible].mean() / energies[audible])
    return gains


class Effects(Protocol):
    """What the sampler asks of its effects (augment.StemEffects; augment imports this module, so
    the sampler names the interface, not the class)."""
    rng: np.random.Generator

    def wants_mixup(self) -> bool: ...
    def __call__(self, stems: np.ndarray) -> np.ndarray: ...
    def master(self, stems: np.ndarray) -> np.ndarray: ...
    def codec_error(self, mix: np.ndarray) -> np.ndarray | None: ...
    def state(self) -> dict[str, Any]: ...
    def set_state(self, state: dict[str, Any]) -> None: ...


class ExcerptSampler:
    """Draws training batches of stems (batch, sources, channels, samples), seeded; the sources
    are the songs' (every song must have as many, in the same order).

    With probability `remix_probability` each source of an example comes from an independently
    drawn song and offset (new mixtures no song contains), among the songs where that source is
    not silent (a song without vocals, e.g. rendered stems, still lends its drums, never a silent
    vocal track). Otherwise the example is one song's excerpt, and with `fill_missing` a stem the
    song lacks altogether is drawn from another song, so that no mix lacks a stem only because its
    song never had it (rendered songs have no vocals, two CC0 songs no bass). Every stem gets a
    random gain within ±gain_range_db and a random channel swap; with `level` = (source, low,
    high, share), in a `share` of the examples that source is then scaled so that its energy over
    the excerpt sits uniformly between `low` and `high` dB from the rest of the mix (where it
    sounds at all): vocals 20 dB under a synth mix occur as often as vocals level with a guitar
    band. With `speed_range` r > 0 every
    stem is also played at a random speed within 1 ± r (an excerpt of speed·N samples resampled
    to N: pitch and tempo change together, ±1.7 semitones for r = 0.1); the stems of one song
    share their speed, so they stay in time. Songs are drawn with weight min(duration, 30 s), so
    a long song counts for more than a 7-second preview but does not drown the others
    (`weight_cap_s` sets the cap); `rendered` songs are drawn as a whole `rendered_share` of the
    draws of every stem they have, and with `balance_rendered` each of their stems is read with
    the gain that gives it the mean energy of the song's stems (General MIDI renders hold "other"
    about 12 dB over the rest, where a real song's stems sit near one level). `accompanied` songs
    hold vocals and, in one other slot, their accompaniment (every other stem together: a label for
    the sum of the non-vocal stems only); an `accompanied_share` of the examples is one of them as
    recorded (gains, swaps and speed as any), flagged so that the loss scores their vocals against
    the rest; they lend nothing to other examples. With `effects` (augment.StemEffects), an
    example's stems get a second stem of their kind from another song (same-stem mixup) and, where
    every stem is full-band, their studio effects, before the gains; the limiter comes last, then
    the mix's codec error (what the network hears beside the stems' sum); the effects draw from
    their own generator, so the excerpts drawn are the same with them and without.
    """

    def __init__(self, songs: list[Song], excerpt_samples: int, seed: int,
                 remix_probability: float = 0.5, gain_range_db: float = 6.0, sample_rate: int = 44100,
                 speed_range: float = 0.0, weight_cap_s: float = 30.0, rendered: list[Song] = (),
                 rendered_share: float = 0.5, fill_missing: bool = False,
                 level: tuple[int, float, float, float] | None = None, balance_rendered: bool = False,
                 accompanied: list[Song] = (), accompanied_share: float = 0.25, effects: Effects | None = None):
        if not 0.0 <= speed_range < 0.5:
            raise ValueError(f"speed_range must be in [0, 0.5), got {speed_range}")
        if rendered and not 0.0 < rendered_share < 1.0:
            raise ValueError(f"rendered_share must be in (0, 1), got {rendered_share}")
        longest = int(np.ceil(excerpt_samples * (1 + speed_range)))
        real = [s for s in songs if s.samples >= longest]
        rendered = [s for s in rendered if s.samples >= longest]
        accompanied = [s for s in accompanied if s.samples >= longest]
        if not real + rendered:
            raise StemsError(f"no training song is longer than one excerpt ({longest} samples)")
        if accompanied and not 0.0 < accompanied_share < 1.0:
            raise ValueError(f"accompanied_share must be in (0, 1), got {accompanied_share}")
        self.songs = real + rendered + accompanied  # the accompanied ones last: drawn only as themselves
        counts = sorted({s.stems.shape[0] for s in self.songs})
        if len(counts) > 1:
            raise StemsError(f"training songs have different numbers of sources ({', '.join(map(str, counts))}): "
                             "load them all with the same source list")
        self.n_sources = counts[0]
        self.excerpt = excerpt_samples
        self.remix = remix_probability
        self.gain_range_db = gain_range_db
        self.speed_range = speed_range
        self.level = level
        weights = np.array([min(s.samples / sample_rate, weight_cap_s) for s in self.songs])
        whole = len(real) + len(rendered)  # songs whose stems are each a label
        if real and rendered:  # the rendered songs' weights sum to rendered_share of all
            weights[len(real): whole] *= (rendered_share / (1 - rendered_share) * weights[: len(real)].sum()
                                          / weights[len(real): whole].sum())
        self.accompanied = np.arange(whole, len(self.songs))
        self.accompanied_weights = weights[whole:] / weights[whole:].sum() if accompanied else np.zeros(0)
        self.accompanied_share = accompanied_share
        weights[whole:] = 0.0
        self.weights = weights / weights.sum()
        audible = np.array([[index < whole and np.abs(np.asarray(song.stems[source])).max() > SILENCE
                             for source in range(self.n_sources)]
                            for index, song in enumerate(self.songs)])  # (songs, sources): none of an accompanied song
        # per song and source, the gain its excerpts are read with
        self.song_gains = np.ones((len(self.songs), self.n_sources), np.float32)
        if balance_rendered:
            for index in range(len(real), whole):
                self.song_gains[index] = _equal_energy_gains(self.songs[index], audible[index])
        self.remix_pools = [self._pool(weights, audible[:, source]) for source in range(self.n_sources)]
        # per song, the stems it lacks that some other song has
        self.missing = [np.flatnonzero(~row & audible.any(axis=0)) if fill_missing else np.array([], int) for row in audible]
        self.rng = np.random.default_rng(seed)
        self.effects = effects

    @staticmethod
    def _pool(weights: np.ndarray, audible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(song indices, their normalised weights) of the songs where a source is `audible`
        (songs,); all songs when it is silent everywhere."""
        indices = np.flatnonzero(audible) if audible.any() else np.arange(len(audible))
        return indices, weights[indices] / weights[indices].sum()

    def _slice(self, index: int, source: int | slice, rng: np.random.Generator | None = None) -> np.ndarray:
        """A random excerpt of song `index`'s source (channels, excerpt) or all of its sources
        (sources, channels, excerpt), at a random speed when speed_range > 0, drawn with `rng`
        (default: the sampler's)."""
        rng = rng or self.rng
        song = self.songs[index]
        speed = 1.0 + rng.uniform(-self.speed_range, self.speed_range) if self.speed_range else 1.0
        length = int(round(self.excerpt * speed))
        offset = int(rng.integers(0, song.samples - length + 1))
        gains = self.song_gains[index, source]
        audio = np.asarray(song.stems[source, ..., offset: offset + length], dtype=np.float32)
        audio = audio * (gains[:, None, None] if isinstance(source, slice) else gains)  # a copy: never the song's own samples
        if length == self.excerpt:
            return audio
        played = resample(audio.reshape(-1, length), length, self.excerpt)
        played = np.pad(played, ((0, 0), (0, max(0, self.excerpt - played.shape[-1]))))[:, : self.excerpt]
        return np.ascontiguousarray(played.reshape(*audio.shape[:-1], self.excerpt), dtype=np.float32)

    def _example(self) -> tuple[np.ndarray, float, bool, np.ndarray | None]:
        """One example's stems (sources, channels, samples), the top of the band all of them hold
        (Hz; inf for full-band recordings), whether it is an accompanied song's (its non-vocal
        stems one label), and what a codec added to its mix (channels, samples; None: nothing)."""
        rng = self.rng
        n_sources = self.n_sources
        accompanied = bool(self.accompanied.size) and rng.random() < self.accompanied_share
        if accompanied:
            drawn = [rng.choice(self.accompanied, p=self.accompanied_weights)]
            stems = self._slice(drawn[0], slice(None))
        elif rng.random() < self.remix:
            drawn, slices = [], []
            for source, (indices, weights) in enumerate(self.remix_pools):
                drawn.append(rng.choice(indices, p=weights))
                slices.append(self._slice(drawn[-1], source))
            stems = np.stack(slices)
        else:
            song = rng.choice(len(self.songs), p=self.weights)
            stems = self._slice(song, slice(None))
            drawn = [song]
            for source in self.missing[song]:
                indices, weights = self.remix_pools[source]
                drawn.append(rng.choice(indices, p=weights))
                stems[source] = self._slice(drawn[-1], source)
        if self.effects is not None and not accompanied:
            stems = self._effects(stems, drawn)
        gains = 10 ** (rng.uniform(-self.gain_range_db, self.gain_range_db, size=(n_sources, 1, 1)) / 20)
        stems = stems * gains.astype(np.float32)
        swap = rng.random(n_sources) < 0.5
        stems[swap] = stems[swap, ::-1]
        if self.level is not None:
            source, low, high, share = self.level
            if share >= 1.0 or rng.random() < share:  # no draw at share 1: the stream stays as before
                self._set_level(stems, source, low, high)
        band_hz = min(self.songs[song].band_hz for song in drawn) * (1 - self.speed_range)  # the slowest speed bounds it
        codec_error = None
        if self.effects is not None and not accompanied:
            stems = self.effects.master(stems)
            if math.isinf(band_hz):  # a band-limited mix's codec error would fill the bins the loss ignores
                codec_error = self.effects.codec_error(stems.sum(axis=0))
        return stems, band_hz, accompanied, codec_error

    def _effects(self, stems: np.ndarray, drawn: list[int]) -> np.ndarray:
        """Same-stem mixup, then the studio effects, on an example's stems (sources, channels,
        samples); `drawn` gains the songs the mixup drew from. A band-limited example is
        left as it is: a pitch shift would move its band."""
        effects = self.effects
        for source, (indices, weights) in enumerate(self.remix_pools):
            if effects.wants_mixup():
                drawn.append(effects.rng.choice(indices, p=weights))
                stems[source] += self._slice(drawn[-1], source, effects.rng)
        if all(math.isinf(self.songs[song].band_hz) for song in drawn):
            stems = effects(stems)
        return stems

    def _set_level(self, stems: np.ndarray, source: int, low: float, high: float) -> None:
        """Scale stems[source] in place so that its energy is a uniform draw in [low, high] dB
        from the rest's; an excerpt where it or the rest is silent is left as it is."""
        energy = float(np.square(stems[source], dtype=np.float64).sum())
        rest = float(np.square(stems.sum(axis=0) - stems[source], dtype=np.float64).sum())
        silent = SILENCE ** 2 * stems.shape[-1]
        target_db = self.rng.uniform(low, high)
        if energy > silent and rest > silent:
            stems[source] *= np.float32(np.sqrt(10 ** (target_db / 10) * rest / energy))

    def draw(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`size` examples: stems (size, sources, channels, samples), the top of the band each
        example's stems all hold (size,) in Hz (inf: full band), which examples are accompanied
        songs' (size,) bool, and what a codec added to each example's mix (size, channels,
        samples; zeros where none did): the mix the network hears is the stems' sum plus it."""
        stems, bands, accompanied, errors = zip(*(self._example() for _ in range(size)))
        stems = np.stack(stems)
        mix_errors = np.zeros_like(stems[:, 0])
        for row, error in enumerate(errors):
            if error is not None:
                mix_errors[row] = error
        return stems, np.array(bands), np.array(accompanied), mix_errors

    def batch(self, size: int) -> np.ndarray:
        """The stems of `size` examples (size, sources, channels, samples)."""
        return self.draw(size)[0]

    def state(self) -> dict:
        if self.effects is None:
            return self.rng.bit_generator.state
        return {"excerpts": self.rng.bit_generator.state, "effects": self.effects.state()}

    def set_state(self, state: dict) -> None:
        if "excerpts" in state:
            self.rng.bit_generator.state = state["excerpts"]
            if self.effects is not None:
                self.effects.set_state(state["effects"])
        else:
            self.rng.bit_generator.state = state
