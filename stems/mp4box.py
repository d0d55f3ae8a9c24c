"""MP4 (ISO BMFF) boxes, just enough to add a box under `moov/udta`.

An MP4 file is a sequence of boxes: a 32-bit big-endian size (1: a 64-bit size follows the type;
0: the box runs to the end of its parent), a four-character type, then the payload, which for a
container is more boxes. Only `moov` is read into memory (it is small); the media data (`mdat`)
is copied through. Growing `moov` moves whatever follows it, so when the media data comes after
`moov` (ffmpeg's `+faststart`) every chunk offset (`stco`/`co64`) that points past it is shifted.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

# the containers on the way to the user data and to the chunk offset tables
CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta")
COPY_BLOCK = 1 << 20


@dataclass
class Box:
    """One box: `payload` for a leaf, `children` for a container in CONTAINERS."""

    kind: bytes
    payload: bytes = b""
    children: list[Box] | None = None

    def to_bytes(self) -> bytes:
        body = self.payload if self.children is None else b"".join(c.to_bytes() for c in self.children)
        if len(body) + 8 < 1 << 32:
            return struct.pack(">I4s", len(body) + 8, self.kind) + body
        return struct.pack(">I4sQ", 1, self.kind, len(body) + 16) + body

    def child(self, kind: bytes) -> Box | None:
        return next((c for c in self.children or () if c.kind == kind), None)


def _header(data: bytes, offset: int, end: int) -> tuple[bytes, int, int]:
    """(type, header bytes, box size) of the box at `offset`; size 0 runs to `end`."""
    size, kind = struct.unpack_from(">I4s", data, offset)
    header = 16 if size == 1 else 8
    if size == 1 and offset + 16 <= len(data):  # else size 1 < header: refused below
        (size,) = struct.unpack_from(">Q", data, offset + 8)
    elif size == 0:
        size = end - offset
    if size < header or offset + size > end:
        raise ValueError(f"bad MP4 box '{kind.decode(errors='replace')}' at byte {offset}")
    return kind, header, size


def parse_boxes(data: bytes) -> list[Box]:
    """The boxes in `data`, descending into CONTAINERS. Fewer than 8 trailing zero bytes (the
    optional QuickTime terminator of `udta`) are dropped."""
    boxes, offset = [], 0
    while len(data) - offset >= 8:
        kind, header, size = _header(data, offset, len(data))
        body = data[offset + header: offset + size]
        boxes.append(Box(kind, children=parse_boxes(body)) if kind in CONTAINERS else Box(kind, body))
        offset += size
    if any(data[offset:]):
        raise ValueError(f"bad MP4 box: {len(data) - offset} stray bytes at the end")
    return boxes


def top_level(handle: BinaryIO) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of each top-level box of an open file, reading only the headers."""
    end = handle.seek(0, os.SEEK_END)
    boxes, offset = [], 0
    while offset < end:
        handle.seek(offset)
        head = handle.read(16)
        kind, _, size = _header(head.ljust(16, b"\0"), 0, end - offset)
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def _read_moov(handle: BinaryIO) -> tuple[Box, int, int, int]:
    """(parsed `moov`, its offset, its size, the file's end) of an open MP4 file."""
    boxes = top_level(handle)
    for kind, offset, size in boxes:
        if kind == b"moov":
            handle.seek(offset)
            return parse_boxes(handle.read(size))[0], offset, size, boxes[-1][1] + boxes[-1][2]
    raise ValueError(f"{handle.name}: no 'moov' box (not an MP4 file?)")


def _descend(box: Box | None, *kinds: bytes) -> Box | None:
    for kind in kinds:
        box = box.child(kind) if box is not None else None
    return box


def udta_box(path: Path, kind: bytes) -> bytes | None:
    """Payload of the box `kind` under `moov/udta`, or None."""
    with open(path, "rb") as handle:
        found = _descend(_read_moov(handle)[0], b"udta", kind)
    return found.payload if found is not None else None


def _shift_chunk_offsets(moov: Box, after: int, delta: int) -> None:
    """Add `delta` to every chunk offset at or beyond byte `after`, in every track."""
    for trak in moov.children:
        stbl = _descend(trak, b"mdia", b"minf", b"stbl")
        for table in stbl.children if stbl is not None else ():
            if table.kind in (b"stco", b"co64"):
                offsets = np.frombuffer(table.payload, dtype=">u4" if table.kind == b"stco" else ">u8", offset=8)
                moved = offsets.astype(np.int64) + np.where(offsets >= after, delta, 0)
                if table.kind == b"stco" and moved.size and moved.max() >= 1 << 32:
                    raise ValueError("chunk offsets beyond 4 GiB after growing 'moov' ('stco' cannot hold them)")
                table.payload = table.payload[:8] + moved.astype(offsets.dtype).tobytes()


def _copy(source: BinaryIO, target: BinaryIO, start: int, stop: int) -> None:
    source.seek(start)
    while start < stop:
        block = source.read(min(COPY_BLOCK, stop - start))
        if not block:
            raise ValueError(f"{source.name}: shorter than its boxes say")
        target.write(block)
        start += len(block)


def write_with_udta_box(source: Path, target: Path, kind: bytes, payload: bytes) -> None:
    """Copy the MP4 file `source` to `target` with the box `kind` under `moov/udta` set to
    `payload` (replacing any of that type, creating `udta` if needed). Box sizes and chunk
    offsets are fixed up; the media data is copied unchanged."""
    with open(source, "rb") as src:
        moov, moov_offset, moov_size, end = _read_moov(src)
        udta = moov.child(b"udta")
        if udta is None:
            udta = Box(b"udta", children=[])
            moov.children.append(udta)
        udta.children = [c for c in udta.children if c.kind != kind] + [Box(kind, payload)]
        # offset tables keep their size when shifted, so the growth is known before the shift
        _shift_chunk_offsets(moov, moov_offset + moov_size, len(moov.to_bytes()) - moov_size)
        with open(target, "wb") as out:
            _copy(src, out, 0, moov_offset)
            out.write(moov.to_bytes())
            _copy(src, out, moov_offset + moov_size, end)
