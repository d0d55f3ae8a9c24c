"""File to files: read blocks, separate, write every stem atomically.

Output paths come from one naming function (`output_path`); a template that would escape the
output directory is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .audio import StemWriter, open_audio, read_block
from .errors import StemsError
from .separator import Separator, output_groups

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"


def track_name(path: Path) -> str:
    """'Song.stem.mp4' -> 'Song'; 'song.wav' -> 'song'."""
    name = path.name
    for suffix in (".stem.mp4", ".stem.m4a"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def output_path(out_dir: Path, template: str, track: str, stem: str, ext: str) -> Path:
    """Where `stem` of `track` goes; refuses templates that leave `out_dir`."""
    try:
        relative = template.format(track=track, stem=stem, ext=ext)
    except (KeyError, IndexError, ValueError) as error:
        raise StemsError(f"--filename '{template}': bad template ({error}); use {{track}}, {{stem}} and {{ext}}") from None
    candidate = Path(relative)
    root = out_dir.resolve()
    resolved = (root / candidate).resolve()
    if candidate.is_absolute() or ".." in candidate.parts or not resolved.is_relative_to(root):
        raise StemsError(f"--filename '{template}': output path '{relative}' leaves the output directory")
    return out_dir / candidate


@dataclass
class FileResult:
    path: Path
    duration: float = 0.0
    seconds: float = 0.0
    outputs: dict[str, Path] = field(default_factory=dict)
    clipped: dict[str, int] = field(default_factory=dict)
    resampled_from: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def speed(self) -> float:
        return self.duration / self.seconds if self.seconds > 0 else 0.0


def separate_file(
    separator: Separator,
    path: Path,
    out_dir: Path,
    *,
    track: str | None = None,
    stems: tuple[str, ...] | None = None,
    two_stems: str | None = None,
    mask: str | None = None,
    fmt: str = "wav",
    template: str = DEFAULT_TEMPLATE,
    float_output: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FileResult:
    """Separate one file into `out_dir`, in bounded memory. Raises StemsError (naming the file)
    on bad input or output; then no output file is created or replaced."""
    started = time.perf_counter()
    groups = output_groups(separator.sources, stems, two_stems)
    mask = mask or separator.default_mask
    track = track or track_name(path)
    targets = {name: output_path(out_dir, template, track, name, fmt) for name in groups}
    if not overwrite:
        existing = [str(t) for t in targets.values() if t.exists()]
        if existing:
            raise StemsError(f"{existing[0]}: output exists (use --overwrite to replace it)")
    with open_audio(path, separator.sample_rate) as (handle, info):
        result = FileResult(path, duration=info.duration,
                            resampled_from=info.original_rate if info.original_rate != info.sample_rate else None)
        writers: dict[str, StemWriter] = {}
        try:
            for name, target in targets.items():
                writers[name] = StemWriter(target, info.sample_rate, info.channels, fmt, float_output)
            for chunk in separator.iter_chunks(lambda a, b: read_block(handle, a, b), info.frames,
                                               info.channels, groups, mask):
                for name, piece in chunk.stems.items():
                    writers[name].write(piece)
                if progress is not None:
                    progress(chunk.start + next(iter(chunk.stems.values())).shape[-1], info.frames)
            for name, writer in writers.items():
                writer.commit()
                result.outputs[name] = writer.target
                if writer.clipped:
                    result.clipped[name] = writer.clipped
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise
    result.seconds = time.perf_counter() - started
    return result
