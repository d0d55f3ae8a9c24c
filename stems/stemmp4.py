"""Native Instruments Stem files (.stem.mp4), the format Traktor and Mixxx load.

One MP4 with five stereo 44.1 kHz audio streams in NI's order: the master mix (the only stream
marked default, so ordinary players play just the mix), then drums, bass, other and vocals; and a
`stem` box under `moov/udta` holding NI's JSON (stem names and colours, mastering settings).
Streams are AAC at 256 kb/s (ffmpeg's native encoder) or 24-bit ALAC. Files are written as the
wav writers do: under temporary names beside the target, renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .audio import AUDIO_EXTENSIONS, AudioInfo, StemFiles, open_audio, read_block, run_ffmpeg, run_ffprobe
from .errors import StemsError
from .mp4box import write_with_udta_box

STEM_MP4 = "stem.mp4"
NI_STEMS = ("drums", "bass", "other", "vocals")
STREAMS = ("mix", *NI_STEMS)  # NI's stream order
STEM_RATE = 44100
CODECS = {"aac": ["-c:a", "aac", "-b:a", "256k"], "alac": ["-c:a", "alac", "-sample_fmt", "s32p"]}
COVER_CODECS = ("mjpeg", "png")  # the pictures an MP4 'covr' can hold
LENGTH_TOLERANCE_S = 1.0  # encoder padding makes stems of one track differ by a few ms
BLOCK = 1 << 18  # samples per block when packing

# NI's defaults (as stempeg ships them): mastering off, the stems' names and colours
NI_METADATA = {
    "version": 1,
    "mastering_dsp": {
        "compressor": {"enabled": False, "input_gain": 0.5, "output_gain": 0.5, "dry_wet": 50, "ratio": 3,
                       "threshold": 0, "attack": 0.003000000026077032, "release": 0.300000011920929, "hp_cutoff": 300},
        "limiter": {"enabled": False, "threshold": 0, "ceiling": -0.3499999940395355, "release": 0.05000000074505806},
    },
    "stems": [{"name": name.capitalize(), "color": color}
              for name, color in zip(NI_STEMS, ("#009E73", "#D55E00", "#CC79A7", "#56B4E9"))],
}


def _cover_stream(path: Path) -> int | None:
    """Index of the first attached picture in `path` that MP4 can hold, or None."""
    done = run_ffprobe(["-show_entries", "stream=index,codec_name:stream_disposition=attached_pic", "-of", "csv=p=0"], path)
    for line in done.stdout.splitlines() if done is not None else ():
        index, codec, attached = (line.split(",") + ["", "", ""])[:3]
        if codec in COVER_CODECS and attached == "1":
            return int(index)
    return None


def _encode_args(parts: dict[str, Path], codec: str, tags_from: Path | None, out: Path) -> list[str]:
    """ffmpeg arguments that encode the five stream files `parts` into the MP4 `out`, with the
    tags and cover picture of `tags_from`."""
    inputs = [parts[name] for name in STREAMS] + ([tags_from] if tags_from is not None else [])
    args = [a for path in inputs for a in ("-i", str(path))]
    args += [a for i in range(len(STREAMS)) for a in ("-map", f"{i}:a:0")]
    if tags_from is not None:
        source = len(STREAMS)
        args += ["-map_metadata", str(source)]
        cover = _cover_stream(tags_from)
        if cover is not None:
            args += ["-map", f"{source}:{cover}", "-c:v", "copy", "-disposition:v:0", "attached_pic"]
    args += ["-af", f"aresample={STEM_RATE}:resampler=soxr", *CODECS[codec]]
    args += [a for i in range(len(STREAMS)) for a in (f"-disposition:a:{i}", "default" if i == 0 else "0")]
    # moov before the media data, as NI's own files have it
    return [*args, "-movflags", "+faststart", "-brand", "M4A ", "-f", "mp4", str(out)]


class StemMP4Writer:
    """Writes one .stem.mp4 block by block: the five streams go to float wavs in a temporary
    folder beside `target`; `commit` encodes them, adds NI's `stem` box and renames the file
    into place; `abort` removes every temporary.

    Args:
        target: the file to write.
        sample_rate: rate of the blocks (encoded at 44.1 kHz).
        codec: "aac" (256 kb/s) or "alac" (lossless, 24-bit: samples beyond [-1, 1] are clipped).
        tags_from: a file whose tags (title, artist, album...) and cover picture are copied.
    """

    def __init__(self, target: Path, sample_rate: int, codec: str = "aac", tags_from: Path | None = None):
        if codec not in CODECS:
            raise StemsError(f"{target}: unknown codec '{codec}' (choose from {', '.join(CODECS)})")
        self.target, self.codec, self.tags_from = target, codec, tags_from
        self.clipped: dict[str, int] = {}
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
        except OSError as error:
            raise StemsError(f"{target}: cannot write output ({error.strerror})") from None
        try:
            self.parts = StemFiles({name: self.folder / f"{name}.wav" for name in STREAMS}, sample_rate, 2, "wav", True)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def write(self, blocks: dict[str, np.ndarray]) -> None:
        """blocks: {stream: (channels, samples)} for "mix" and the four stems; mono is written twice."""
        if self.codec == "alac":
            for name, block in blocks.items():
                over = int((np.abs(block) > 1.0).sum())
                if over:
                    self.clipped[name] = self.clipped.get(name, 0) + over
        self.parts.write({name: np.broadcast_to(block, (2, block.shape[-1])) for name, block in blocks.items()})

    def commit(self) -> dict[str, Path]:
        """Encode, pack and rename into place; returns {stream: the file holding it}."""
        encoded, packed = self.folder / "encoded.mp4", self.folder / "packed.mp4"
        try:
            run_ffmpeg(_encode_args(self.parts.commit(), self.codec, self.tags_from, encoded), self.target)
            write_with_udta_box(encoded, packed, b"stem", json.dumps(NI_METADATA).encode())
            os.replace(packed, self.target)
        except (OSError, ValueError) as error:
            raise StemsError(f"{self.target}: cannot write output ({getattr(error, 'strerror', None) or error})") from None
        finally:
            self.abort()
        return {name: self.target for name in STREAMS}

    def abort(self) -> None:
        self.parts.abort()
        shutil.rmtree(self.folder, ignore_errors=True)


def find_stems(folder: Path) -> dict[str, Path]:
    """{stem: path} of drums/bass/other/vocals.<audio extension> in `folder` (any case). Another
    stem beside them (e.g. piano.wav of a six-stem separation) is refused: packing would drop it.
    A mix (mix, mixture) and stem groups (no_vocals) are not stems and may be there."""
    if not folder.is_dir():
        raise StemsError(f"{folder}: not a directory")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS]
    extra = sorted(p.name for p in files if p.stem.lower() not in (*NI_STEMS, "mix", "mixture")
                   and not p.stem.lower().startswith("no_"))
    if extra:
        raise StemsError(f"{folder}: a .{STEM_MP4} holds the four stems {', '.join(NI_STEMS)}; this folder also has "
                         f"{', '.join(extra)}, which packing would drop (move it out to pack the four)")
    found = {}
    for name in NI_STEMS:
        matches = sorted(p.name for p in files if p.stem.lower() == name)
        if not matches:
            raise StemsError(f"{folder}: no {name} stem (expected {name}.wav, {name}.flac, {name}.mp3...)")
        if len(matches) > 1:
            raise StemsError(f"{folder}: several {name} stems ({', '.join(matches)}): keep one")
        found[name] = folder / matches[0]
    return found


def _check_alike(folder: Path, infos: dict[str, AudioInfo]) -> None:
    """Stems of one track share a sample rate, and their lengths (the mix's too) differ by
    encoder padding at most."""
    rates = {name: info.original_rate for name, info in infos.items() if name != "mix" and info.original_rate}
    if len(set(rates.values())) > 1:
        listed = ", ".join(f"{name} {rate} Hz" for name, rate in rates.items())
        raise StemsError(f"{folder}: the stems have different sample rates ({listed})")
    seconds = {name: info.duration for name, info in infos.items()}
    if max(seconds.values()) - min(seconds.values()) > LENGTH_TOLERANCE_S:
        listed = ", ".join(f"{name} {length:.1f} s" for name, length in seconds.items())
        raise StemsError(f"{folder}: lengths differ by more than {LENGTH_TOLERANCE_S:g} s ({listed}): not one track?")


def pack_stems(folder: Path, target: Path, codec: str = "aac", mix: Path | None = None,
               overwrite: bool = False) -> dict[str, int]:
    """Pack separated stems (drums/bass/other/vocals files in `folder`) into the .stem.mp4 `target`.

    The master stream is `mix` (whose tags and cover are copied too), else the sum of the stems.
    Shorter streams are padded with silence to the longest; see `_check_alike` for what is refused.
    Returns {stream: samples clipped} (ALAC only).
    """
    sources = find_stems(folder)
    if mix is not None:
        sources = {"mix": mix, **sources}
    if target.exists() and not overwrite:
        raise StemsError(f"{target}: output exists (use --overwrite to replace it)")
    with contextlib.ExitStack() as stack:
        opened = {name: stack.enter_context(open_audio(path, STEM_RATE)) for name, path in sources.items()}
        _check_alike(folder, {name: info for name, (_, info) in opened.items()})
        frames = max(info.frames for _, info in opened.values())
        writer = StemMP4Writer(target, STEM_RATE, codec, tags_from=mix)
        try:
            for start in range(0, frames, BLOCK):
                stop = min(start + BLOCK, frames)
                blocks = {name: read_block(handle, start, stop, sources[name]) for name, (handle, _) in opened.items()}
                if mix is None:
                    blocks["mix"] = sum(blocks.values())  # mono stems broadcast onto stereo ones
                writer.write(blocks)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return writer.clipped
