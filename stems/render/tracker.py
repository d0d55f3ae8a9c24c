"""A tracker module (.mod, .xm, .s3m, .it) split into labelled parts: one per instrument, or per
sample in a module without instruments, that starts a note in the order list's patterns.

Labels, first rule that applies: a drum word in the instrument's name (drums), a bass word in it
(bass), then the same for the names of the samples the instrument plays (read from the file for
.it and .xm, whose instruments map notes to samples), and for a module without instruments the
sample's own name (labels.py's drum and bass words); everything else is other. Tracker names are
often credits ("written and tracked by") or empty: such a part is other, and songs.py rejects a
module none of whose parts is named for drums or bass (its drums and bass, if any, would be
labelled other).

Impulse Tracker instruments can swing each note's volume and pan at random (libopenmpt seeds its
generator anew for every load), so no two renders of such a module are the same and its parts
could not add up to its whole: the swings are set to 0 in the bytes that are rendered, and the
card says so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import StemsError
from .labels import stem_of_name
from .openmpt import Module

IT_RANDOM_SWING = (0x1A, 0x1B)  # an IT 2.x instrument's random volume and pan variation (percent)


@dataclass(frozen=True)
class Slot:
    """One part of a module: an instrument (or sample) slot that plays alone in its render."""

    index: int  # 0-based, as libopenmpt's instrument mute numbers it
    kind: str  # "instrument" or "sample"
    name: str
    samples: tuple[str, ...]  # the names of the samples an instrument plays (as the file holds them)
    notes: int  # notes started with it in the order list's patterns
    stem: str  # drums, bass or other
    reason: str  # why it has its label


def label(kind: str, name: str, samples: tuple[str, ...]) -> tuple[str, str]:
    """(stem, why) of a slot by its name, then by its samples' names."""
    stem = stem_of_name(name)
    if stem is not None:
        return stem, f"{kind} named {name!r}"
    for sample in samples:
        stem = stem_of_name(sample)
        if stem is not None:
            return stem, f"its sample named {sample!r}"
    return "other", "no drum or bass word in its names"


def _name(data: bytes, offset: int, size: int) -> str:
    return data[offset: offset + size].split(b"\0", 1)[0].decode("latin-1").strip()


def _it_instruments(data: bytes) -> tuple[list[int], list[int]]:
    """(instrument header offsets, sample header offsets) of an IT file; ([], []) if damaged."""
    if len(data) < 0xC0 or data[:4] != b"IMPM":
        return [], []
    orders, instruments, samples = struct.unpack_from("<3H", data, 0x20)
    table = 0xC0 + orders
    if table + 4 * (instruments + samples) > len(data):
        return [], []
    offsets = struct.unpack_from(f"<{instruments + samples}I", data, table)
    return list(offsets[:instruments]), list(offsets[instruments:])


def _it_sample_names(data: bytes) -> list[tuple[str, ...]]:
    """Per IT instrument, the names of the samples its keyboard table plays."""
    instruments, samples = _it_instruments(data)
    names = [_name(data, offset + 0x14, 26) if offset + 0x2E <= len(data) else "" for offset in samples]
    played = []
    for offset in instruments:
        table = data[offset + 0x40: offset + 0x40 + 240]
        numbers = dict.fromkeys(number for number in table[1::2] if 0 < number <= len(names))
        played.append(tuple(names[number - 1] for number in numbers))
    return played


def _xm_sample_names(data: bytes) -> list[tuple[str, ...]]:
    """Per XM instrument, the names of the samples its keymap plays; [] if damaged."""
    try:
        header_size, = struct.unpack_from("<I", data, 60)
        patterns, instruments = struct.unpack_from("<2H", data, 70)
        position = 60 + header_size
        for _ in range(patterns):
            length, = struct.unpack_from("<I", data, position)
            packed, = struct.unpack_from("<H", data, position + 7)
            position += length + packed
        played = []
        for _ in range(instruments):
            size, = struct.unpack_from("<I", data, position)
            count, = struct.unpack_from("<H", data, position + 27)
            if count == 0:
                played.append(())
                position += size
                continue
            sample_header, = struct.unpack_from("<I", data, position + 29)
            keymap = data[position + 33: position + 33 + 96]
            headers = [position + size + sample_header * index for index in range(count)]
            names = [_name(data, header + 18, 22) for header in headers]
            played.append(tuple(names[number] for number in dict.fromkeys(keymap) if number < count))
            lengths = sum(struct.unpack_from("<I", data, header)[0] for header in headers)
            position = headers[-1] + sample_header + lengths
        return played
    except struct.error:
        return []


def instrument_sample_names(data: bytes) -> list[tuple[str, ...]]:
    """Per instrument, the names of the samples it plays, for .it and .xm ([] for other formats)."""
    if data[:4] == b"IMPM":
        return _it_sample_names(data)
    if data[:17] == b"Extended Module: ":
        return _xm_sample_names(data)
    return []


def without_random_swing(data: bytes) -> tuple[bytes, list[int]]:
    """An IT file's bytes with every instrument's random volume and pan swing set to 0, and the
    (0-based) instruments that had some; other files unchanged."""
    if len(data) < 0xC0 or data[:4] != b"IMPM" or struct.unpack_from("<H", data, 0x2A)[0] < 0x200:
        return data, []  # not an IT file, or IT 1.x, whose instruments have no swing
    changed, swung = bytearray(data), []
    for index, offset in enumerate(_it_instruments(data)[0]):
        fields = [offset + field for field in IT_RANDOM_SWING]
        if fields[-1] < len(data) and data[offset: offset + 4] == b"IMPI" and any(data[f] for f in fields):
            for field in fields:
                changed[field] = 0
            swung.append(index)
    return bytes(changed), swung


def module_slots(data: bytes, origin: str) -> tuple[list[Slot], str]:
    """The labelled parts of a module and its format (as libopenmpt names it).

    Raises:
        StemsError: libopenmpt cannot read it, or it starts no note.
    """
    with Module(data, origin) as module:
        instruments, samples = module.instrument_names(), module.sample_names()
        notes = module.note_counts()
        module_format = module.format()
    kind, names = ("instrument", instruments) if instruments else ("sample", samples)
    played = instrument_sample_names(data) if instruments else []
    slots = []
    for index, count in notes.items():
        if index < len(names):
            sample_names = tuple(name for name in (played[index] if index < len(played) else ()) if name)
            stem, reason = label(kind, names[index], sample_names)
            slots.append(Slot(index, kind, names[index], sample_names, count, stem, reason))
    if not slots:
        raise StemsError(f"{origin}: its patterns start no note")
    return slots, module_format
