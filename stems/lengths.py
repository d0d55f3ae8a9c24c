"""How long an audio file says it is, and how much of that it holds: a download cut short keeps
its header, so the header's length and the audio present disagree (`audio.open_audio` refuses it).
"""

from __future__ import annotations

import struct
from pathlib import Path

import soundfile as sf

from .errors import StemsError

# How far a lossy stream may fall short of its declared length before it counts as truncated: encoder
# delay and padding, and lengths estimated from the bit rate (an mp3 without a Xing header).
LOSSY_SHORTFALL_S, LOSSY_SHORTFALL = 0.5, 0.02


def check_length(path: Path, declared_s: float, held_s: float, exact: bool) -> None:
    """Refuse a file whose audio ends before its header says. `exact`: the header counts samples
    (PCM, FLAC), so a shortfall over 1 ms (not a partial last frame) is a cut; otherwise the
    lossy tolerance applies."""
    allowed = 0.001 if exact else max(LOSSY_SHORTFALL_S, LOSSY_SHORTFALL * declared_s)
    if declared_s - held_s > allowed:
        digits = 1 if round(declared_s, 1) != round(held_s, 1) else 3
        raise StemsError(f"{path}: truncated: the header declares {declared_s:.{digits}f} s, "
                         f"the file holds {held_s:.{digits}f} s")


def container_data_seconds(path: Path) -> tuple[float, float] | None:
    """(seconds the data chunk declares, seconds of it the file holds) of a WAV, RF64, BW64, AIFF or
    AIFC file, from its chunk headers; None for other files, unreadable headers and the sizes a
    recorder writes before it knows the length (0 or 0xFFFFFFFF: read to the end of the file).

    libsndfile reports only the frames present in a cut file, so the header is read here."""
    unknown = (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(12)
            if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
                order = "<"
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                order = ">"
            else:
                return None
            wide_size = bytes_per_second = seconds = None
            while len(chunk := file.read(8)) == 8:
                name, chunk_size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
                start = file.tell()
                if name == b"ds64":  # RF64's 64-bit sizes: riff, data, sample count
                    wide_size = struct.unpack("<QQ", file.read(16))[1]
                elif name == b"fmt ":  # format, channels, sample rate, bytes per second
                    bytes_per_second = struct.unpack("<HHII", file.read(12))[3]
                elif name == b"COMM":  # channels, frames, bits, 80-bit float sample rate
                    _, frames, _, exponent, mantissa = struct.unpack(">hIhHQ", file.read(18))
                    seconds = frames / (mantissa * 2.0 ** ((exponent & 0x7FFF) - 16383 - 63))
                elif name in (b"data", b"SSND"):
                    if name == b"data" and chunk_size == 0xFFFFFFFF and wide_size is not None:
                        chunk_size = wide_size
                    if chunk_size in unknown:
                        return None
                    if name == b"SSND":  # data offset and block size come first
                        offset = struct.unpack(">I", file.read(4))[0]
                        chunk_size, start = chunk_size - 8 - offset, start + 8 + offset
                        bytes_per_second = chunk_size / seconds
                    held = min(chunk_size, max(size - start, 0))
                    return chunk_size / bytes_per_second, held / bytes_per_second
                file.seek(start + chunk_size + (chunk_size & 1))  # chunks are padded to even sizes
    except (OSError, struct.error, ArithmeticError, TypeError):  # TypeError: a data chunk before its format
        return None
    return None  # no data chunk: libsndfile's error says what is wrong


def frames_held(path: Path, frames: int) -> int:
    """How many of the `frames` a FLAC, Ogg or MP3 header declares can be read: all when the last
    one reads (one seek), else the readable prefix found by bisection."""
    probe = sf.SoundFile(str(path))

    def reads(frame: int) -> bool:
        nonlocal probe
        try:
            probe.seek(frame)
            return probe.read(1).shape[0] == 1
        except (sf.LibsndfileError, RuntimeError):
            probe.close()  # a failed FLAC seek leaves the handle unusable
            probe = sf.SoundFile(str(path))
            return False

    try:
        if reads(frames - 1):
            return frames
        low, high = -1, frames - 1  # frame `low` reads (or is before the start), frame `high` does not
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if reads(middle) else (low, middle)
        return low + 1
    finally:
        probe.close()
