"""Synthetic training stems: procedurally composed songs rendered with fluidsynth.

Each song is composed from (`--seed`, song index): tempo, key, mode, a diatonic chord progression
(one chord per bar), a drum pattern family, a bass line locked partly to the kick and 1-3 "other"
parts (chords block/arpeggiated/strummed, pads, power chords, sometimes a melody). Each stem is
written as its own Standard MIDI File (tempo track + its parts), rendered alone by the fluidsynth
CLI with a General MIDI soundfont (reverb and chorus on for every stem, so each stem carries its
own tail), trimmed to `--seconds` of continuous music (a lead-in bar and a tail bar are rendered
and cut off), levelled and written as `OUT/<song>/{drums,bass,other}.flac` (44.1 kHz stereo
24-bit) plus `song.json` (what was composed). There is no vocals file: the trainer reads a missing
stem as silence. A song appears only once all its files are written (built under `OUT/.partial/`
and renamed), so an interrupted run leaves no partial song and a rerun resumes.

Run: .venv/bin/python scripts/synth_stems.py OUT --songs 60 --seconds 10 --seed 0 [--jobs 2]
Needs: apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from stems.errors import StemsError
from stems.render.fluidsynth import render

RATE = 44100
TICKS = 480  # MIDI ticks per quarter note; a sixteenth step is TICKS // 4
DRUM_CHANNEL = 9  # General MIDI channel 10
BASS_RANGE = (28, 55)  # E1..G3
STEMS = ("drums", "bass", "other")
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
APT = "apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm"
FADE_SECONDS = 0.01  # against clicks where the trim cuts sounding notes
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
PROGRESSIONS = {  # scale degrees counted from 0, one chord per bar
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 3, 5, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4)),
}


class Dice:
    """Seeded choices drawn from random.Random.random() alone: the one method whose sequence
    Python promises to keep across versions, so a seed renders the same songs next year."""

    def __init__(self, seed: str):
        self._random = random.Random(seed)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random.random()

    def integer(self, low: int, high: int) -> int:
        """low..high inclusive."""
        return low + min(int(self._random.random() * (high - low + 1)), high - low)

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]

    def weighted(self, options, weights):
        target = self.uniform(0, sum(weights))
        for option, weight in zip(options, weights):
            target -= weight
            if target < 0:
                return option
        return options[-1]

    def jitter(self, spread: float) -> float:
        """Triangular noise within ±spread."""
        return spread * (self._random.random() - self._random.random())


@dataclass(frozen=True)
class Note:
    tick: int
    length: int
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument on one MIDI channel; `stem` names the file it is rendered into."""
    stem: str
    name: str
    channel: int
    program: int
    pan: int
    volume: int
    reverb: int
    chorus: int
    notes: list[Note] = field(default_factory=list)


@dataclass
class Song:
    """A composed song of `bars` bars (the first a lead-in, the last a tail, both trimmed away)."""
    name: str
    beat_us: int  # microseconds per quarter note, as the tempo event says
    beats: int  # quarter notes per bar
    bars: int
    parts: list[Part]
    level_db: dict[str, float]  # each stem's RMS relative to "other"
    peak_db: float  # the loudest of the mix and the stems after levelling
    description: dict

    @property
    def end_tick(self) -> int:
        return self.bars * self.beats * TICKS

    @property
    def bar_seconds(self) -> float:
        return self.beats * self.beat_us / 1e6


@dataclass(frozen=True)
class Grid:
    """Where notes go: sixteenth steps of each bar, swung by `swing` (0 straight, 1 triplet
    shuffle), and each bar's chord as pitch classes, root first."""
    bpm: int
    beats: int
    swing: float
    key: int
    scale: tuple[int, ...]
    chords: tuple[tuple[int, ...], ...]

    @property
    def steps(self) -> int:
        return 4 * self.beats

    def tick(self, bar: int, step: int) -> int:
        offsets = (0, 120 + 40 * self.swing, 240 + 80 * self.swing, 360 + 40 * self.swing)
        return (bar * self.beats + step // 4) * TICKS + round(offsets[step % 4])

    def span(self, bar: int, rhythm: tuple[int, ...], i: int, legato: float) -> tuple[int, int]:
        """Start and end ticks of note `i` of a bar's `rhythm` (steps). It ends (1 - legato) of
        the gap before the next onset (or the bar's end), counting at most a beat of that gap:
        short notes come out detached, long ones still sound for most of their time."""
        start = self.tick(bar, rhythm[i])
        following = self.tick(bar, rhythm[i + 1] if i + 1 < len(rhythm) else self.steps)
        return start, following - round((1 - legato) * min(following - start, TICKS))

    def ms(self, milliseconds: float) -> float:
        return milliseconds * TICKS * self.bpm / 60000


def add_note(part: Part, dice: Dice, grid: Grid, start: int, end: int, pitch: int, velocity: float) -> None:
    """Append a humanised note: onset moved by up to ±4 ms, velocity by up to ±8."""
    velocity = min(127, max(1, round(velocity + dice.jitter(8))))
    part.notes.append(Note(max(0, start + round(dice.jitter(grid.ms(4)))), max(10, end - start), pitch, velocity))


def voicing(chord: tuple[int, ...], low: int, count: int) -> list[int]:
    """`count` chord tones stacked upward from the first one at or above `low` (an inversion
    close to the previous chord's, so voices move little)."""
    return [p for p in range(low, low + 48) if p % 12 in chord][:count]


# ---- drums -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DrumStyle:
    weight: float
    beats: int
    bpm: tuple[int, int]
    # drum kits (bank 128 presets): 0 standard, 8 room, 16 power, 24 electronic, 25 TR-808, 32 jazz,
    # 40 brush, 48 orchestra
    kits: tuple[int, ...]
    kicks: tuple[tuple[int, ...], ...]  # alternative kick steps
    snares: tuple[int, ...]
    snare_notes: tuple[int, ...]
    hats: tuple[tuple[int, ...], ...]
    opens: tuple[tuple[int, ...], ...]  # open hi-hat steps
    swings: tuple[float, ...]


EIGHTHS, SIXTEENTHS, QUARTERS = tuple(range(0, 16, 2)), tuple(range(16)), (0, 4, 8, 12)
DRUM_STYLES = {  # weight, beats a bar, bpm range, kits, kick patterns, snare steps, snare notes, hat
    # patterns, open-hat patterns, swings; steps are sixteenths
    "rock": DrumStyle(3, 4, (90, 160), (0, 8, 16, 32), ((0, 8), (0, 8, 10), (0, 6, 8), (0, 3, 8, 10)),
                      (4, 12), (38, 40), (EIGHTHS, SIXTEENTHS, QUARTERS), ((), (14,)), (0.0,)),
    "house": DrumStyle(2, 4, (110, 132), (24, 25, 0, 16), ((0, 4, 8, 12),), (4, 12), (39, 38, 40),
                       (SIXTEENTHS, EIGHTHS), ((2, 6, 10, 14),), (0.0, 0.15)),
    "breakbeat": DrumStyle(2, 4, (80, 112), (0, 8, 24, 25, 32), ((0, 10), (0, 7, 10), (0, 2, 10, 11), (0, 6, 9)),
                           (4, 12), (38, 40, 39), (EIGHTHS, SIXTEENTHS), ((), (7,), (15,)), (0.0, 0.3, 0.6)),
    "halftime": DrumStyle(2, 4, (70, 170), (0, 16, 25, 8), ((0,), (0, 6), (0, 3, 10), (0, 14)), (8,), (38, 40, 39),
                          (EIGHTHS, QUARTERS, SIXTEENTHS), ((), (14,)), (0.0, 0.2)),
    "shuffle": DrumStyle(1.5, 4, (80, 140), (0, 32, 40, 8), ((0, 8), (0, 6, 8), (0, 8, 14)), (4, 12), (38, 37),
                         (EIGHTHS,), ((), (6,)), (1.0,)),
    "waltz": DrumStyle(0.7, 3, (80, 170), (32, 40, 0, 48), ((0,), (0, 6)), (4, 8), (38, 37),
                       (tuple(range(0, 12, 2)), (0, 4, 8)), ((),), (0.0, 1.0)),
}
TOM_RUNS = ((50, 48, 45, 43), (48, 47, 45, 41), (38, 38, 45, 43), (50, 47, 43))  # high to low


def drum_part(grid: Grid, dice: Dice, style_name: str, bars: int) -> tuple[Part, tuple[int, ...]]:
    """The drum kit part (fills at phrase ends, crashes after them, optional ghost notes and a
    hand percussion line) and its kick steps, which the bass locks to."""
    style = DRUM_STYLES[style_name]
    kit = dice.choice(style.kits)
    part = Part("drums", f"drums {style_name} kit {kit}", DRUM_CHANNEL, kit, 64 + dice.integer(-8, 8),
                dice.integer(95, 115), dice.integer(5, 45), dice.integer(0, 15))
    kicks, hats, opens = dice.choice(style.kicks), dice.choice(style.hats), dice.choice(style.opens)
    kick, snare = dice.choice((36, 35)), dice.choice(style.snare_notes)
    cymbal = 51 if dice.chance(0.25) else 42  # ride or closed hi-hat
    ghosts = dice.chance(0.4)
    percussion = dice.choice((None, None, None, (54, style.snares), (70, hats), (69, hats)))
    filled = False
    for bar in range(bars):
        hits = {}  # step -> list of (pitch, velocity)
        crash = bar == 1 or (bar % 4 == 0 and (filled or dice.chance(0.4)))
        filled = bar % 4 == 3 and dice.chance(0.7)
        fill_from = grid.steps - dice.choice((4, 4, 8)) if filled else grid.steps
        if crash:
            hits.setdefault(0, []).append((dice.choice((49, 57)), 105))
        for step in hats:
            if step < fill_from and not (crash and step == 0):
                pitch = 46 if step in opens and cymbal == 42 else cymbal
                hits.setdefault(step, []).append((pitch, 85 if step % 4 == 0 else 70 if step % 2 == 0 else 55))
        extra = (dice.integer(1, grid.steps - 1),) if dice.chance(0.2) else ()
        for step in sorted(set(kicks + extra)):
            if step < fill_from:
                hits.setdefault(step, []).append((kick, 112 if step == 0 else 98))
        for step in range(1, fill_from, 2) if ghosts else ():
            if dice.chance(0.15):
                hits.setdefault(step, []).append((snare, 32))
        for step in style.snares:
            if step < fill_from:
                hits.setdefault(step, []).append((snare, 102))
        if percussion:
            for step in percussion[1]:
                if step < fill_from:
                    hits.setdefault(step, []).append((percussion[0], 60))
        if filled:
            toms, rate = dice.choice(TOM_RUNS), dice.choice((1, 2))
            run = range(fill_from, grid.steps, rate)
            for i, step in enumerate(run):
                hits.setdefault(step, []).append((toms[i * len(toms) // len(run)], 75 + 40 * i / len(run)))
        for step, voices in hits.items():
            for pitch, velocity in voices:
                add_note(part, dice, grid, grid.tick(bar, step), grid.tick(bar, step + 1), pitch, velocity)
    return part, kicks


# ---- bass --------------------------------------------------------------------------------------

def fold(pitch: int, low: int, high: int) -> int:
    """`pitch` moved by octaves into low..high."""
    while pitch > high:
        pitch -= 12
    while pitch < low:
        pitch += 12
    return pitch


def bass_part(grid: Grid, dice: Dice, kicks: tuple[int, ...], bars: int) -> Part:
    """Roots with fifths, octaves, thirds and approach notes into the next chord, in one of
    several rhythms (the kick's, eighths, walking quarters, sustained, syncopated), E1..G3."""
    program = dice.integer(32, 39)
    style = dice.choice(("kick", "kick", "eighths", "walking", "sustain", "syncopated"))
    steps = grid.steps
    rhythm = {"kick": tuple(sorted(set(kicks) | {0})), "eighths": tuple(range(0, steps, 2)),
              "walking": tuple(range(0, steps, 4)), "sustain": dice.choice(((0,), (0, steps // 2))),
              "syncopated": tuple(s for s in (0, 3, 6, 10, 12, 14) if s < steps)}[style]
    part = Part("bass", f"bass {style} program {program}", 0, program, 64 + dice.integer(-6, 6),
                dice.integer(95, 115), dice.integer(0, 25), dice.integer(0, 20))
    legato, low = dice.uniform(0.5, 0.95), BASS_RANGE[0] + dice.choice((0, 0, 12))
    for bar in range(bars):
        chord = grid.chords[bar]
        root = low + (chord[0] - low) % 12
        next_root = fold(root + (grid.chords[(bar + 1) % bars][0] - chord[0]) % 12, root - 6, root + 6)
        for i, step in enumerate(rhythm):
            if i == 0:
                pitch = root
            elif i == len(rhythm) - 1 and dice.chance(0.5):
                pitch = next_root + dice.choice((-1, 1, -2, 2))  # approach the next chord
            else:
                pitch = dice.choice((root, root, root + 12, root + 7, root + (chord[1] - chord[0]) % 12))
            start, end = grid.span(bar, rhythm, i, legato)
            add_note(part, dice, grid, start, end, fold(pitch, *BASS_RANGE), 105 if step == 0 else 92)
    return part


# ---- other -------------------------------------------------------------------------------------

INSTRUMENTS = (  # family, General MIDI programs, roles it can play
    ("piano", (0, 1, 2, 3), ("block", "arp", "melody")),
    ("electric piano", (4, 5, 7), ("block", "arp")),
    ("organ", (16, 17, 18, 19), ("block", "pad")),
    ("clean guitar", (24, 25, 26, 27, 28), ("strum", "arp")),
    ("overdriven guitar", (29,), ("strum", "power")),
    ("distorted guitar", (30,), ("power",)),
    ("strings", (48, 49, 50, 51), ("pad", "block")),
    ("brass", (56, 57, 61, 62, 63), ("block", "melody")),
    ("synth pad", tuple(range(88, 96)), ("pad",)),
    ("synth lead", (80, 81, 82, 84, 85, 87), ("melody", "arp")),
    ("pluck", (8, 10, 11, 12, 13, 45, 46), ("arp", "melody")),
    ("reed", (65, 66, 71, 73), ("melody",)),
)


def chord_part(part: Part, grid: Grid, dice: Dice, role: str, bars: int) -> None:
    """Chords: block (a rhythm of whole chords), pad (one sustained chord a bar), arp (chord
    tones one at a time), strum (guitar voicing, strings a few ms apart, down and up strokes) or
    power (root, fifth, octave)."""
    steps = grid.steps
    rhythms = ((0,), tuple(range(0, steps, 8)), tuple(range(0, steps, 4)), tuple(range(2, steps, 4)),
               tuple(s for s in (0, 6, 10) if s < steps), tuple(s for s in (0, 4, 6, 10, 12, 14) if s < steps))
    if role == "arp":
        rate = dice.choice((1, 2)) if grid.bpm < 125 else 2
        rhythm, legato = tuple(range(0, steps, rate)), dice.uniform(0.6, 1.6)
        low, count = dice.integer(52, 67), dice.integer(3, 6)
        order = dice.choice(("up", "down", "updown"))
    elif role == "strum":
        rhythm, legato, spread = dice.choice(rhythms[1:]), dice.uniform(0.7, 1.0), grid.ms(dice.uniform(8, 25))
        low, count = dice.integer(40, 47), dice.integer(5, 6)
    elif role == "power":
        rhythm = dice.choice((tuple(range(0, steps, 2)), (0,), rhythms[1], rhythms[4]))
        legato, low = (0.45 if len(rhythm) > 4 else 0.95), dice.integer(40, 47)
    else:  # block or pad
        rhythm = (0,) if role == "pad" else dice.choice(rhythms)
        legato = 1.0 if role == "pad" else dice.uniform(0.4, 1.0)
        low, count = dice.integer(50, 64), dice.integer(3, 4)
    velocity = dice.integer(60, 80) if role == "pad" else dice.integer(75, 100)
    for bar in range(bars):
        chord = grid.chords[bar]
        if role == "power":
            root = low + (chord[0] - low) % 12
            tones = [root, root + 7, root + 12]
        else:
            tones = voicing(chord, low, count)
        if role == "arp":
            tones = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}[order]
        for i, step in enumerate(rhythm):
            start, end = grid.span(bar, rhythm, i, legato)
            accent = velocity + (8 if step % 4 == 0 else 0)
            if role == "arp":
                add_note(part, dice, grid, start, end, tones[i % len(tones)], accent)
            elif role == "strum":
                up = step % 4 == 2
                for k, pitch in enumerate(tones[-4:][::-1] if up else tones):
                    offset = round(k * spread)
                    add_note(part, dice, grid, start + offset, end, pitch, accent - (15 if up else 0))
            else:
                for pitch in tones:
                    add_note(part, dice, grid, start, end, pitch, accent)


def melody_part(part: Part, grid: Grid, dice: Dice, bars: int) -> None:
    """A mostly stepwise walk over the scale on a two-bar rhythm motif, landing on chord tones on
    the strong beats, within 20 semitones from a lowest note between C4 and C5."""
    low = dice.integer(60, 72)
    pitches = [p for p in range(low, low + 20) if (p - grid.key) % 12 in grid.scale]
    motifs = [sorted({0} | {s for s in range(0, grid.steps, 2) if dice.chance(0.5)}
                     | {s for s in range(1, grid.steps, 2) if dice.chance(0.08)}) for _ in range(2)]
    legato, velocity, index = dice.uniform(0.6, 1.0), dice.integer(80, 105), len(pitches) // 2
    for bar in range(bars):
        chord, rhythm = grid.chords[bar], motifs[bar % 2]
        for i, step in enumerate(rhythm):
            index = min(len(pitches) - 1, max(0, index + dice.choice((-3, -2, -1, -1, 0, 1, 1, 2, 3))))
            if step % 8 == 0:
                index = min(range(len(pitches)), key=lambda j: (pitches[j] % 12 not in chord, abs(j - index)))
            start, end = grid.span(bar, rhythm, i, legato)
            add_note(part, dice, grid, start, end, pitches[index], velocity)


def other_parts(grid: Grid, dice: Dice, bars: int) -> list[Part]:
    """1-3 parts of different instrument families on channels 1-3; the first plays chords, at
    most one plays a melody."""
    options = [(family, programs, role) for family, programs, roles in INSTRUMENTS for role in roles]
    parts, families, roles = [], set(), []
    for channel in range(1, dice.integer(1, 3) + 1):
        no_melody = not roles or "melody" in roles
        family, programs, role = dice.choice([o for o in options if o[0] not in families
                                              and not (no_melody and o[2] == "melody")])
        families.add(family)
        roles.append(role)
        program = dice.choice(programs)
        part = Part("other", f"{family} program {program} {role}", channel, program, dice.integer(20, 108),
                    dice.integer(85, 115), dice.integer(10, 70), dice.integer(0, 40))
        if role == "melody":
            melody_part(part, grid, dice, bars)
        else:
            chord_part(part, grid, dice, role, bars)
        parts.append(part)
    return parts


def song_name(seed: int, index: int) -> str:
    return f"synth-s{seed}-{index:05d}"


def compose(seed: int, index: int, seconds: float) -> Song:
    """Song number `index` of seed `seed`, long enough for `seconds` of music after its lead-in bar."""
    dice = Dice(f"synth_stems:{seed}:{index}")
    style_name = dice.weighted(tuple(DRUM_STYLES), [s.weight for s in DRUM_STYLES.values()])
    style = DRUM_STYLES[style_name]
    bpm, key, mode = dice.integer(*style.bpm), dice.integer(0, 11), dice.choice(tuple(MODES))
    progression, sevenths = dice.choice(PROGRESSIONS[mode]), dice.chance(0.25)
    scale = MODES[mode]
    beat_us = round(60e6 / bpm)
    bars = math.ceil(seconds / (style.beats * beat_us / 1e6)) + 2
    stack = (0, 2, 4, 6) if sevenths else (0, 2, 4)
    chords = tuple(tuple((key + scale[(progression[bar % 4] + k) % 7]) % 12 for k in stack) for bar in range(bars))
    grid = Grid(bpm, style.beats, dice.choice(style.swings), key, scale, chords)
    drums, kicks = drum_part(grid, dice, style_name, bars)
    parts = [drums, bass_part(grid, dice, kicks, bars), *other_parts(grid, dice, bars)]
    level_db = {"drums": round(dice.uniform(-3, 3), 2), "bass": round(dice.uniform(-3, 3), 2), "other": 0.0}
    description = {"seed": seed, "index": index, "bpm": bpm, "beats": style.beats, "swing": grid.swing,
                   "key": f"{NOTE_NAMES[key]} {mode}", "progression": progression, "sevenths": sevenths,
                   "parts": [p.name for p in parts]}
    peak_db = round(dice.uniform(-6, -1), 2)
    return Song(song_name(seed, index), beat_us, style.beats, bars, parts, level_db, peak_db, description)


# ---- Standard MIDI File ------------------------------------------------------------------------

def vlq(value: int) -> bytes:
    """A variable-length quantity: 7 bits a byte, most significant first, high bit = more follows."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def track_chunk(events: list[tuple[int, bytes]], end_tick: int) -> bytes:
    """An MTrk chunk of (absolute tick, message) events in playing order, ended at `end_tick` or
    the last event, whichever is later."""
    data, now = bytearray(), 0
    for tick, message in events + [(max([end_tick] + [t for t, _ in events]), b"\xff\x2f\x00")]:
        data += vlq(tick - now) + message
        now = tick
    return b"MTrk" + struct.pack(">I", len(data)) + bytes(data)


def smf(tracks: list[bytes]) -> bytes:
    """A format-1 Standard MIDI File of MTrk chunks (the first carries the tempo map)."""
    return b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), TICKS) + b"".join(tracks)


def untangle(notes: list[Note]) -> list[Note]:
    """Notes by onset, each cut short where the next note of its pitch starts (a note-off after
    that onset would silence the new note: MIDI tracks keys, not notes); unison duplicates dropped."""
    next_onset, kept = {}, []
    for note in sorted(notes, key=lambda n: (n.tick, n.pitch), reverse=True):
        end = min(note.tick + note.length, next_onset.get(note.pitch, note.tick + note.length))
        if end > note.tick:
            kept.append(Note(note.tick, end - note.tick, note.pitch, note.velocity))
        next_onset[note.pitch] = note.tick
    return kept[::-1]


def part_events(part: Part) -> list[tuple[int, bytes]]:
    """The part's name, program, volume, pan, reverb and chorus sends, then its notes; at one
    tick note-offs come before note-ons."""
    channel = part.channel
    events = [(0, 0, b"\xff\x03" + vlq(len(part.name)) + part.name.encode("ascii")),
              (0, 0, bytes((0xC0 | channel, part.program)))]
    events += [(0, 0, bytes((0xB0 | channel, cc, value)))
               for cc, value in ((7, part.volume), (10, part.pan), (91, part.reverb), (93, part.chorus))]
    for note in untangle(part.notes):
        events.append((note.tick, 2, bytes((0x90 | channel, note.pitch, note.velocity))))
        events.append((note.tick + note.length, 1, bytes((0x80 | channel, note.pitch, 0))))
    events.sort(key=lambda e: (e[0], e[1]))
    return [(tick, message) for tick, _, message in events]


def midi_bytes(song: Song, stem: str) -> bytes:
    """The MIDI file of one stem: the tempo track and that stem's parts."""
    tempo = [(0, b"\xff\x51\x03" + song.beat_us.to_bytes(3, "big")),  # microseconds a quarter note
             (0, b"\xff\x58\x04" + bytes((song.beats, 2, 24, 8)))]  # beats/4 time, click every quarter
    parts = [track_chunk(part_events(p), song.end_tick) for p in song.parts if p.stem == stem]
    return smf([track_chunk(tempo, song.end_tick), *parts])


def finish(song: Song, rendered: dict[str, np.ndarray], seconds: float) -> dict[str, np.ndarray]:
    """Stems cut to `seconds` after the lead-in bar, faded in and out by FADE_SECONDS, their RMS
    set to song.level_db relative to "other" and scaled together so the loudest of the mix and
    the stems peaks at song.peak_db. Each stem is float32 (2, seconds * RATE)."""
    start, length = round(song.bar_seconds * RATE), round(seconds * RATE)
    fade = np.minimum(1.0, np.minimum(np.arange(length) + 1, np.arange(length)[::-1] + 1) / (FADE_SECONDS * RATE))
    stems = {}
    for stem, audio in rendered.items():
        window = audio[:, start: start + length]
        if window.shape[1] < length:
            raise RuntimeError(f"{song.name}: {stem} rendered {audio.shape[1]} samples, needs {start + length}")
        stems[stem] = window * fade
    rms = {stem: float(np.sqrt(np.mean(audio ** 2))) for stem, audio in stems.items()}
    if min(rms.values()) < 1e-5:
        raise RuntimeError(f"{song.name}: a stem is silent (RMS {rms})")
    stems = {stem: audio * 10 ** (song.level_db[stem] / 20) * rms["other"] / rms[stem] for stem, audio in stems.items()}
    peak = max([float(np.abs(sum(stems.values())).max())] + [float(np.abs(a).max()) for a in stems.values()])
    return {stem: (audio * (10 ** (song.peak_db / 20) / peak)).astype(np.float32) for stem, audio in stems.items()}


def make_song(out: Path, seed: int, index: int, seconds: float, soundfont: Path) -> bool:
    """Compose, render and write one song unless it is already there; True when written."""
    name = song_name(seed, index)
    if (out / name).exists():
        return False
    partial = out / ".partial" / name
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        song = compose(seed, index, seconds)
        rendered = {stem: render(midi_bytes(song, stem), soundfont, partial / stem) for stem in STEMS}
        for stem, audio in finish(song, rendered, seconds).items():
            sf.write(partial / f"{stem}.flac", audio.T, RATE, subtype="PCM_24", format="FLAC")
        card = {**song.description, "seconds": seconds, "level_db": song.level_db, "peak_db": song.peak_db}
        (partial / "song.json").write_text(json.dumps(card, indent=1) + "\n")
        os.replace(partial, out / name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder of <song>/{drums,bass,other}.flac")
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--soundfont", type=Path, default=SOUNDFONT)
    parser.add_argument("--jobs", type=int, default=1, help="songs rendered at once")
    args = parser.parse_args(argv)
    if args.songs < 1 or args.seconds <= 0 or args.jobs < 1:
        print(f"error: --songs and --jobs must be at least 1 and --seconds above 0 (got {args.songs}, "
              f"{args.jobs}, {args.seconds})", file=sys.stderr)
        return 2
    if shutil.which("fluidsynth") is None:
        print(f"error: fluidsynth not found; install it: {APT}", file=sys.stderr)
        return 2
    if not args.soundfont.is_file():
        print(f"error: soundfont {args.soundfont} not found; install it: {APT}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    def one(index: int) -> bool:
        written = make_song(args.out, args.seed, index, args.seconds, args.soundfont)
        print(f"{song_name(args.seed, index)}: {'written' if written else 'already there'}", flush=True)
        return written

    partial_root = args.out / ".partial"
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            written = sum(pool.map(one, range(args.songs)))
    except (StemsError, RuntimeError, OSError, subprocess.TimeoutExpired) as error:  # fluidsynth or the disk failed
        print(f"error: {error}; the songs written so far are kept, a rerun resumes", file=sys.stderr)
        return 1
    finally:
        if partial_root.is_dir() and not any(partial_root.iterdir()):
            partial_root.rmdir()
    print(f"{args.songs} songs in {args.out} ({written} new, {args.songs - written} already there): "
          f"{written * args.seconds / 60:.1f} min of new audio in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
