"""A song collection's songs rendered into `<out>/<song>/{drums,bass,other}.flac` folders the trainer reads.

Each song is split into parts (midi.py for MIDI files, mmp.py for LMMS projects, tracker.py for
tracker modules), each part rendered alone (fluidsynth.py, lmms.py, openmpt.py), parts that stay
silent dropped, and the parts of a stem summed, so the stems add up to the mix exactly: the mix is
always their sum, never a separate render (ZynAddSubFX and DrumSynth do not even play a project
the same way twice). Where the renderer plays a song the same way every time (libopenmpt), the
whole song is rendered too, and a song whose parts do not add up to it within PARTS_ERROR_DB is
rejected: muting the other parts changed more than their sound. A song whose labels cannot be
trusted is rejected too (tracker.py: a module none of whose parts is named for drums or bass).
Rejected songs are reported, not written, and are not failures. All stems of a
song share one gain (the loudest of the mix and the stems peaks at PEAK), and the silence that all
of them share at either end is cut. A song is built under `<out>/.partial/` and renamed into place
with its `song.json` (where it came from, its licence, every part's label and why, the soundfont
for MIDI, each stem's level, how far the parts are from the whole render where there is one), so a
song folder that exists is complete: a rerun skips it.
`<out>/songs.json` lists every song folder's card.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..atomic import atomic_path
from ..data import SILENCE
from ..errors import StemsError
from . import fluidsynth, lmms, mmp, openmpt, tracker
from .command import require
from .fluidsynth import RATE, render
from .midi import STEM_OF_PART, split_parts
from .catalogue import (COLLECTIONS, SongCollection, Soundfont, check_installed, installed_soundfonts, lmms_licence,
                        module_licence)

PEAK = 0.9
PARTIAL = ".partial"
PARTS_ERROR_DB = 40.0  # how far under the whole render's energy the parts' sum's difference from it must be


class SongRejected(StemsError):
    """A song that is not written because its parts or their labels do not hold; not a failure."""


@dataclass
class SongResult:
    name: str
    collection: str  # the name of the collection it belongs to
    status: str  # "written", "skipped" (already there), "rejected" or "failed"
    card: dict = field(default_factory=dict)  # the song's song.json
    error: str = ""


@dataclass(frozen=True)
class Part:
    """One part of a song to render alone."""

    stem: str  # drums, bass or other
    card: dict  # its entry in song.json's "parts"
    render: Callable[[Path], np.ndarray]  # work path (no suffix) -> float32 (2, samples) at 44.1 kHz


def song_name(collection: SongCollection, name: str, soundfont: Soundfont | None) -> str:
    return f"{collection.name}-{name}" if soundfont is None else f"{collection.name}-{name}-{soundfont.name}"


def _midi_parts(midi: bytes, origin: str, soundfont: Soundfont) -> tuple[list[Part], dict]:
    """A MIDI song's parts and the card fields they add (the soundfont)."""
    try:
        parts = split_parts(midi)
    except ValueError as error:
        raise StemsError(f"{origin}: {error}") from None
    described = [Part(part.stem, {"channel": part.channel + 1, "stem": part.stem, "programs": list(part.programs),
                                  "notes": part.notes, "why": part.reason},
                      lambda work, part=part: render(part.midi, soundfont.path, work)) for part in parts]
    return described, {"soundfont": {"name": soundfont.name, "package": soundfont.package,
                                     "licence": soundfont.licence, "file": str(soundfont.path)}}


def _lmms_parts(project: bytes, origin: str) -> tuple[list[Part], dict]:
    """An LMMS project's parts (its tracks, labelled) and the card fields they add (its licence)."""
    root = mmp.read_project(project, origin)
    tracks = mmp.project_tracks(root, Path(origin).name, mmp.load_table())
    described = [Part(track.stem, {"track": track.index, "name": track.name, "plugin": track.plugin,
                                   "sample": track.sample, "beat_bassline": track.beat, "notes": track.notes,
                                   "pitch": track.pitch, "stem": track.stem, "why": track.reason},
                      lambda work, index=track.index: lmms.render(mmp.solo(root, index), work)) for track in tracks]
    return described, {"licence": lmms_licence(Path(origin))}


def _module_parts(module: bytes, origin: str) -> tuple[list[Part], dict, Callable[[Path], np.ndarray]]:
    """A tracker module's parts (its instruments, or samples, labelled), the card fields they add
    (its package, licence and format, the instruments whose random swing was removed) and its
    whole render.

    Raises:
        SongRejected: no part is named for drums or bass.
    """
    playable, swung = tracker.without_random_swing(module)
    slots, module_format = tracker.module_slots(playable, origin)
    if not any(slot.stem != "other" for slot in slots):
        raise SongRejected(f"{origin}: none of its {len(slots)} parts is named for drums or bass "
                           "(any drums and bass it holds would be labelled other)")
    described = [Part(slot.stem, {slot.kind: slot.index + 1, "name": slot.name, "samples": list(slot.samples),
                                  "notes": slot.notes, "stem": slot.stem, "why": slot.reason},
                      lambda work, index=slot.index: openmpt.render(playable, origin, index)) for slot in slots]
    package = module_licence(Path(origin))
    extra = {**({"package": package[0], "licence": package[1]} if package else {}), "format": module_format,
             **({"random_swing_removed": [index + 1 for index in swung]} if swung else {})}
    return described, extra, lambda work: openmpt.render(playable, origin)


def _split(collection: SongCollection, data: bytes, origin: str,
           soundfont: Soundfont | None) -> tuple[list[Part], dict, Callable[[Path], np.ndarray] | None]:
    """A song's parts, the card fields they add, and its whole render where the renderer plays a
    song the same way every time (else None)."""
    if collection.kind == "module":
        return _module_parts(data, origin)
    parts, extra = _lmms_parts(data, origin) if collection.kind == "lmms" else _midi_parts(data, origin, soundfont)
    return parts, extra, None


def _parts_error_db(mix: np.ndarray, whole: np.ndarray) -> float | None:
    """The energy of mix - whole relative to whole's, in dB (None when they are equal), the
    shorter padded with silence."""
    length = max(mix.shape[1], whole.shape[1])
    mix, whole = (np.pad(audio, ((0, 0), (0, length - audio.shape[1]))) for audio in (mix, whole))
    return _level_db(mix - whole, whole)


def _level_db(audio: np.ndarray, reference: np.ndarray) -> float | None:
    """The energy of `audio` relative to `reference`'s, in dB (None for silence)."""
    energy = float(np.square(audio, dtype=np.float64).sum())
    return round(float(10 * np.log10(energy / float(np.square(reference, dtype=np.float64).sum()))), 2) if energy else None


def render_song(out: Path, collection: SongCollection, name: str, data: bytes, origin: str,
                soundfont: Soundfont | None) -> SongResult:
    """Render one song (a MIDI file with `soundfont`, or an LMMS project or a tracker module
    with None) into `out`/<song name>/ unless that folder exists.

    Raises:
        SongRejected: its labels or its parts do not hold (no files of the song are left).
        StemsError: a part failed to render (no files of the song are left).
    """
    folder = out / song_name(collection, name, soundfont)
    if folder.is_dir():
        return SongResult(folder.name, collection.name, "skipped", json.loads((folder / "song.json").read_text()))
    partial = out / PARTIAL / folder.name
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        parts, extra, whole = _split(collection, data, origin, soundfont)
        rendered = [part.render(partial / f"part{index:02d}") for index, part in enumerate(parts)]
        audible = [float(np.abs(audio).max()) >= SILENCE for audio in rendered]
        length = max((audio.shape[1] for audio, keep in zip(rendered, audible) if keep), default=0)
        stems = {stem: np.zeros((2, length), np.float32) for stem in STEM_OF_PART}
        for part, audio, keep in zip(parts, rendered, audible):
            if keep:
                stems[part.stem][:, : audio.shape[1]] += audio
        mix = sum(stems.values())
        if whole is not None:
            extra["parts_error_db"] = error_db = _parts_error_db(mix, whole(partial / "whole"))
            if error_db is not None and error_db > -PARTS_ERROR_DB:
                raise SongRejected(f"{origin}: its parts add up to its whole render within {-error_db:.1f} dB only "
                                   f"(at least {PARTS_ERROR_DB:.0f} needed)")
        sounding = np.flatnonzero(np.abs(mix).max(axis=0) >= SILENCE)
        if sounding.size < RATE:
            raise StemsError(f"{origin}: renders less than a second of sound")
        window = slice(sounding[0], sounding[-1] + 1)
        peak = max(float(np.abs(a[:, window]).max()) for a in (mix, *stems.values()))
        stems = {stem: audio[:, window] * (PEAK / peak) for stem, audio in stems.items()}
        mix = mix[:, window] * (PEAK / peak)
        written = {stem: audio for stem, audio in stems.items() if np.abs(audio).max() >= SILENCE}
        for stem, audio in written.items():
            sf.write(partial / f"{stem}.flac", audio.T, RATE, subtype="PCM_24", format="FLAC")
        # "source" (the collection's name) keeps the key that rendered folders were written with
        card = {
            "song": folder.name, "source": collection.name, "package": collection.package,
            "licence": collection.licence,
            "origin": origin, **extra, "duration": round(mix.shape[1] / RATE, 2),
            "level_db": {stem: _level_db(stems[stem], mix) for stem in STEM_OF_PART},
            "parts": [{**part.card, "kept": keep} for part, keep in zip(parts, audible)],
        }
        (partial / "song.json").write_text(json.dumps(card, indent=1) + "\n")
        os.replace(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return SongResult(folder.name, collection.name, "written", card)


def write_index(out: Path) -> None:
    """`out`/songs.json: the cards of every song folder in `out`, by name."""
    cards = [json.loads(path.read_text()) for path in sorted(out.glob("*/song.json")) if not path.parent.name.startswith(".")]
    with atomic_path(out / "songs.json") as temporary:
        temporary.write_text(json.dumps(cards, indent=1) + "\n")


def plan(collection_names: list[str], limit: int | None, seed: int,
         soundfont_names: list[str] | None = None) -> list[tuple[SongCollection, str, bytes, str, Soundfont | None]]:
    """Every (collection, song name, MIDI, project or module, origin, soundfont) to render,
    soundfont by soundfont (all MIDI songs with the first, then with the next; LMMS projects and
    tracker modules, whose soundfont is None, once, with the first), collections interleaved; with
    `limit`, at most that many songs of each collection, drawn with `seed`.

    Raises:
        StemsError: an unknown collection or soundfont, fluidsynth, lmms or libopenmpt, a
            collection's packages or every soundfont missing.
    """
    unknown = [name for name in collection_names if name not in COLLECTIONS]
    if unknown:
        raise StemsError(f"unknown collection {', '.join(unknown)} (known: {', '.join(COLLECTIONS)})")
    fonts: list[Soundfont | None] = [None]
    if any(COLLECTIONS[name].kind == "midi" for name in collection_names):
        require("fluidsynth", fluidsynth.APT)
        fonts = installed_soundfonts()
    if any(COLLECTIONS[name].kind == "lmms" for name in collection_names):
        require("lmms", lmms.APT)
    if any(COLLECTIONS[name].kind == "module" for name in collection_names):
        openmpt.library()
    if soundfont_names and fonts != [None]:
        known = {font.name: font for font in fonts}
        missing = [name for name in soundfont_names if name not in known]
        if missing:
            raise StemsError(f"soundfont {', '.join(missing)} is not installed (installed: {', '.join(known)})")
        fonts = [known[name] for name in soundfont_names]
    chosen = []
    for name in collection_names:
        collection = COLLECTIONS[name]
        check_installed(collection)
        songs = list(collection.songs())
        if limit is not None:
            songs = sorted(random.Random(f"{seed}-{name}").sample(songs, min(limit, len(songs))))
        chosen.append((collection, songs))
    jobs = []
    for round_index, font in enumerate(fonts):
        playing = [(collection, songs) for collection, songs in chosen if collection.kind == "midi" or round_index == 0]
        longest = max((len(songs) for _, songs in playing), default=0)
        for index in range(longest):
            jobs += [(collection, *songs[index], font if collection.kind == "midi" else None)
                     for collection, songs in playing if index < len(songs)]
    return jobs


def render_all(out: Path, jobs: list, on_result: Callable[[SongResult], None] | None = None) -> list[SongResult]:
    """Render `jobs` (from `plan`) into `out`: a song that fails or is rejected is reported and
    skipped, the others go on; songs.json is rewritten after each song written."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for collection, name, data, origin, font in jobs:
            try:
                result = render_song(out, collection, name, data, origin, font)
            except SongRejected as error:
                result = SongResult(song_name(collection, name, font), collection.name, "rejected", error=str(error))
            except StemsError as error:
                result = SongResult(song_name(collection, name, font), collection.name, "failed", error=str(error))
            if result.status == "written":
                write_index(out)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        partial = out / PARTIAL
        if partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()
    return results
