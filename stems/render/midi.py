"""A Standard MIDI File split into one file per (channel, stem), each labelled by General MIDI rules.

Labels: channel 10 (index 9) is drums; a note played under GM programs 32-39 (the basses) is
bass; every other note is other, the choir and voice programs (52-54, 85) too, since they are
synth pads, not singing. A channel is labelled note by note by the program in force when the note
starts, so a channel that switches from a bass to a piano gives one part of each. Every part keeps
all meta events (tempo, time signature) and system-exclusive messages of the file, and all of its
channel's controller, pitch-bend and program messages, so each part plays as in the whole file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import mido

DRUM_CHANNEL = 9
BASS_PROGRAMS = range(32, 40)
STEM_OF_PART = ("drums", "bass", "other")


@dataclass(frozen=True)
class Part:
    """One channel's notes of one stem, as a MIDI file that plays them alone."""

    channel: int  # 0-15
    stem: str  # drums, bass or other
    programs: tuple[int, ...]  # the GM programs its notes are played with (0-127)
    notes: int
    reason: str  # why it has its label
    midi: bytes


def stem_of(channel: int, program: int) -> str:
    """The stem of a note on `channel` (0-15) under GM `program` (0-127)."""
    if channel == DRUM_CHANNEL:
        return "drums"
    return "bass" if program in BASS_PROGRAMS else "other"


def _reason(channel: int, stem: str, programs: tuple[int, ...]) -> str:
    if stem == "drums":
        return "GM channel 10"
    names = f"GM program{'s' if len(programs) > 1 else ''} {', '.join(map(str, programs))}"
    return f"{names} ({'a bass: 32-39' if stem == 'bass' else 'not a bass'})"


def _note_stems(midi: mido.MidiFile) -> dict[tuple[int, int, int], tuple[str, int]]:
    """The (stem, program) of every note-on, keyed by (track, index in track, channel), from the
    program in force on its channel when it starts (program changes from every track, in time order)."""
    events = []
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        for index, message in enumerate(track):
            tick += message.time
            if message.type in ("program_change", "note_on"):
                # at one tick a program change comes before the notes it applies to
                events.append((tick, message.type != "program_change", track_index, index, message))
    programs = [0] * 16
    notes = {}
    for _, _, track_index, index, message in sorted(events, key=lambda e: e[:4]):
        if message.type == "program_change":
            programs[message.channel] = message.program
        elif message.velocity > 0:
            program = programs[message.channel]
            notes[track_index, index, message.channel] = stem_of(message.channel, program), program
    return notes


def _part_file(midi: mido.MidiFile, keep) -> bytes:
    """A copy of `midi` holding the messages for which keep(track, index, message) is true, with
    every kept message at its original tick."""
    out = mido.MidiFile(type=midi.type if midi.type != 2 else 1, ticks_per_beat=midi.ticks_per_beat)
    for track_index, track in enumerate(midi.tracks):
        kept, tick, last = mido.MidiTrack(), 0, 0
        for index, message in enumerate(track):
            tick += message.time
            if keep(track_index, index, message):
                kept.append(message.copy(time=tick - last))
                last = tick
        out.tracks.append(kept)
    buffer = io.BytesIO()
    out.save(file=buffer)
    return buffer.getvalue()


def split_parts(data: bytes) -> list[Part]:
    """The parts of a Standard MIDI File (bytes) that play at least one note, by channel and
    stem. A note-off goes to the part its note-on went to.

    Raises:
        ValueError: `data` is not a Standard MIDI File mido can read.
    """
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise ValueError(f"not a readable MIDI file ({error})") from None
    note_stems = _note_stems(midi)
    # a note-off (or a note-on of velocity 0) belongs to the part of the note-on it ends
    owner: dict[tuple[int, int, int], str] = {}
    sounding: dict[tuple[int, int], str] = {}
    for track_index, track in enumerate(midi.tracks):
        for index, message in enumerate(track):
            if message.type == "note_on" and message.velocity > 0:
                stem = note_stems[track_index, index, message.channel][0]
                sounding[message.channel, message.note] = stem
                owner[track_index, index, message.channel] = stem
            elif message.type in ("note_on", "note_off"):
                owner[track_index, index, message.channel] = sounding.get((message.channel, message.note), "")
    counts: dict[tuple[int, str], int] = {}
    programs: dict[tuple[int, str], set[int]] = {}  # the programs each part's notes are played with
    for (_, _, channel), (stem, program) in note_stems.items():
        counts[channel, stem] = counts.get((channel, stem), 0) + 1
        programs.setdefault((channel, stem), set()).add(program)
    parts = []
    for channel, stem in sorted(counts, key=lambda key: (key[0], STEM_OF_PART.index(key[1]))):
        def keep(track_index, index, message, channel=channel, stem=stem):
            if not hasattr(message, "channel"):
                return True  # meta and system-exclusive messages: every part
            if message.channel != channel:
                return False
            if message.type in ("note_on", "note_off"):
                return owner.get((track_index, index, channel)) == stem
            return True
        used = tuple(sorted(programs[channel, stem]))
        parts.append(Part(channel, stem, used, counts[channel, stem], _reason(channel, stem, used), _part_file(midi, keep)))
    return parts
