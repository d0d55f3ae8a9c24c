"""File to files: read blocks, separate, write every stem atomically.

Output paths come from one naming function (`output_path`); a template that would escape the
output directory is refused. Writers come from the format registry (`writers.FORMATS`); with the
format stem.mp4 all stems go into one NI Stem file, whose `{stem}` in the template is "stems".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .audio import open_audio, read_block
from .errors import StemsError, check_interrupted
from .reconstruct import output_groups
from .separator import Separator
from .writers import output_format


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
    skipped: bool = False  # every output already existed (skip_existing)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        """"ok", "skipped" or "failed"."""
        return "failed" if self.error is not None else "skipped" if self.skipped else "ok"

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
    template: str | None = None,
    float_output: bool = False,
    codec: str = "aac",
    overwrite: bool = False,
    skip_existing: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> FileResult:
    """Separate one file into `out_dir`, in bounded memory. Raises StemsError (naming the file)
    on bad input or output; then no output file is created or replaced.

    With `skip_existing`, a file whose outputs all exist is not read (the result is `skipped`):
    writers rename only complete files into place, so an existing output is a finished one. When
    only some exist (a batch killed between two renames; SIGINT and SIGTERM wait for them) the
    file is separated again and they are replaced.

    `fmt` is a format of `writers.FORMATS`: wav, flac, mp3 or stem.mp4 (one file: the input's mix,
    then the four stems, encoded with `codec`: aac or alac); `template` defaults to the format's
    (writers.DEFAULT_TEMPLATE, or BUNDLE_TEMPLATE for stem.mp4)."""
    started = time.perf_counter()
    groups = output_groups(separator.sources, stems, two_stems)
    mask = mask or separator.default_mask
    track = track or track_name(path)
    output = output_format(fmt)
    template = template or output.template
    refusal = output.refusal(separator.sources)
    if refusal:
        raise StemsError(f"{path}: {refusal}")
    output.check(groups, path)
    names = output.file_names(groups)
    targets = {name: output_path(out_dir, template, track, name, fmt) for name in names}
    if skip_existing and all(t.is_file() for t in targets.values()):
        return FileResult(path, outputs=output.outputs(targets), skipped=True, seconds=time.perf_counter() - started)
    if not (overwrite or skip_existing):
        existing = [str(t) for t in targets.values() if t.exists()]
        if existing:
            raise StemsError(f"{existing[0]}: output exists (use --overwrite to replace it)")
    with open_audio(path, separator.sample_rate) as (handle, info):
        result = FileResult(path, duration=info.duration,
                            resampled_from=info.original_rate if info.original_rate != info.sample_rate else None)
        writer = output.open(targets, info.sample_rate, info.channels, float_output=float_output, codec=codec,
                             tags_from=path)
        try:
            for chunk in separator.iter_chunks(lambda a, b: read_block(handle, a, b, path), info.frames,
                                               info.channels, groups, mask):
                stop = chunk.start + next(iter(chunk.stems.values())).shape[-1]
                blocks = chunk.stems
                if output.mix:  # e.g. NI's first stream: the input's own mix, sample-aligned with the stems
                    blocks = {"mix": read_block(handle, chunk.start, stop, path), **blocks}
                writer.write(blocks)
                check_interrupted()
                if progress is not None:
                    progress(stop, info.frames)
            result.outputs = writer.commit()
            result.clipped = writer.clipped
        except BaseException:
            writer.abort()
            raise
    result.seconds = time.perf_counter() - started
    return result
