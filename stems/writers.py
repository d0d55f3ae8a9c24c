"""Output formats: the one interface every writer keeps, and the registry from format name to writer.

A writer is opened on its target files, takes blocks {stream: (channels, samples)} float32 in
order, and either commits (every file renamed into place at once) or aborts (every temporary
removed): a failure never leaves a partial output nor replaces a good one. `files.separate_file`,
the stream recorder (`live.Recorder`) and the CLI's format choices all go through `FORMATS`.

A new format is one entry here: a soundfile-and-ffmpeg format is a row of `audio.ENCODINGS`
(it gets a per-stem entry below by itself), another kind of file a writer class and an entry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .audio import ENCODINGS, StemFiles
from .errors import StemsError
from .stemmp4 import CODECS, NI_STEMS, STEM_MP4, StemMP4Writer

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
BUNDLE_TEMPLATE = "{track}.{ext}"


def count_words(stems: tuple[str, ...]) -> str:
    """How many `stems` there are, in words for a message ("four")."""
    return {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}.get(len(stems), str(len(stems)))


class Writer(Protocol):
    """What an open writer does; `OutputFormat.open` opens one."""

    @property
    def clipped(self) -> dict[str, int]:
        """{stream: samples clipped to [-1, 1]} so far, for the streams that had any."""

    def write(self, blocks: dict[str, np.ndarray]) -> None:
        """Append one block per stream: {stream: (channels, samples)} float32, all one length."""

    def commit(self) -> dict[str, Path]:
        """Finish and rename every file into place; returns {stream: the file holding it}."""

    def abort(self) -> None:
        """Remove every temporary; nothing is left and nothing is replaced."""


Opener = Callable[..., Writer]  # (targets, sample_rate, channels, *, float_output, codec, tags_from)


@dataclass(frozen=True)
class OutputFormat:
    """One entry of the registry.

    Attributes:
        name: the format's name, also its files' extension (`{ext}` in templates).
        opener: opens its Writer (see `open`).
        bundle: for a format whose one file holds every stream, the `{stem}` of that file's name
            ("stems"); None for one file per stem.
        stems: the stems it must hold, in order (None: any).
        mix: whether its writer also takes the input's mix, as stream "mix".
        codecs: the codecs it offers (the first is the default); empty where it has no choice.
    """

    name: str
    opener: Opener
    bundle: str | None = None
    stems: tuple[str, ...] | None = None
    mix: bool = False
    codecs: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        """The default output path template."""
        return BUNDLE_TEMPLATE if self.bundle else DEFAULT_TEMPLATE

    def file_names(self, stems: list[str] | tuple[str, ...]) -> list[str]:
        """The `{stem}` of each file written for `stems`."""
        return [self.bundle] if self.bundle else list(stems)

    def refusal(self, sources: tuple[str, ...]) -> str | None:
        """Why a model predicting `sources` cannot be written in this format, None when it can: a
        format of fixed stems (NI's four) would drop a stem or leave one empty."""
        if self.stems is None or sorted(sources) == sorted(self.stems):
            return None
        return (f"--format {self.name} needs the {count_words(self.stems)} stems {', '.join(self.stems)}; "
                f"this model has {', '.join(sources)}")

    def check(self, stems: list[str] | tuple[str, ...], source: Path | str) -> None:
        """Refuse (StemsError naming `source`) stems this format cannot hold."""
        if self.stems is not None and sorted(stems) != sorted(self.stems):
            raise StemsError(f"{source}: a .{self.name} holds {', '.join(self.stems)}, not {', '.join(stems)}")

    def outputs(self, targets: dict[str, Path]) -> dict[str, Path]:
        """{stream: file} that `commit` returns for the files `targets` ({file name: path})."""
        if self.bundle is None:
            return dict(targets)
        return {stream: targets[self.bundle] for stream in (("mix",) if self.mix else ()) + self.stems}

    def open(self, targets: dict[str, Path], sample_rate: int, channels: int, *, float_output: bool = False,
             codec: str | None = None, tags_from: Path | None = None) -> Writer:
        """Open a writer on `targets` ({file name: path}, names from `file_names`).

        Args:
            sample_rate, channels: of the blocks to come.
            float_output: 32-bit float wav, 24-bit flac (per-stem formats; others ignore it).
            codec: one of `codecs` (default the first); a format without codecs ignores it.
            tags_from: a file whose tags and cover a format that holds them copies.
        """
        if self.codecs and codec is not None and codec not in self.codecs:
            raise StemsError(f"--format {self.name}: unknown codec '{codec}' (choose from {', '.join(self.codecs)})")
        return self.opener(targets, sample_rate, channels, float_output=float_output, codec=codec, tags_from=tags_from)


def _stem_files(fmt: str, targets: dict[str, Path], sample_rate: int, channels: int, *, float_output: bool = False,
                codec: str | None = None, tags_from: Path | None = None) -> Writer:
    return StemFiles(targets, sample_rate, channels, fmt, float_output)


def _stem_mp4(targets: dict[str, Path], sample_rate: int, channels: int, *, float_output: bool = False,
              codec: str | None = None, tags_from: Path | None = None) -> Writer:
    (target,) = targets.values()
    return StemMP4Writer(target, sample_rate, codec or next(iter(CODECS)), tags_from=tags_from)


FORMATS: dict[str, OutputFormat] = {
    **{name: OutputFormat(name, functools.partial(_stem_files, name)) for name in ENCODINGS},
    STEM_MP4: OutputFormat(STEM_MP4, _stem_mp4, bundle="stems", stems=NI_STEMS, mix=True, codecs=tuple(CODECS)),
}
PER_STEM_FORMATS = tuple(name for name, entry in FORMATS.items() if entry.bundle is None)
BUNDLE_FORMATS = tuple(name for name, entry in FORMATS.items() if entry.bundle is not None)


def output_format(name: str) -> OutputFormat:
    """The registry's entry for `name`; StemsError for a name it does not hold."""
    if name not in FORMATS:
        raise StemsError(f"unknown output format '{name}' (choose from {', '.join(FORMATS)})")
    return FORMATS[name]
