"""Batches: which inputs a batch separates, under which track names, how a catalog is split into
shards, and the runner (`Batch`) that separates them with a manifest and skip-existing.

A shard `i/n` takes every n-th file, starting at the (i-1)-th, of the sorted, de-duplicated list
of absolute paths, so n machines given the same inputs (a SLURM job array, a Kubernetes indexed
job, GNU parallel) share a catalog out without a coordinator. Track names are given over the
whole list before it is split, so two files with one name get the same distinct names on every
machine.

    batch = Batch(["/music"], shard="3/8")
    results = batch.run(Separator.from_checkpoint(), "/stems", manifest="manifests/3.jsonl", skip_existing=True)

is `stems separate /music -o /stems --shard 3/8 --manifest manifests/3.jsonl --skip-existing`
without the progress display: the CLI runs the same `Batch`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .audio import find_audio_files
from .errors import StemsError, check_interrupted, clear_interrupted, interrupt
from .files import FileResult, separate_file, track_name
from .manifest import Manifest
from .separator import Separator

Shard = tuple[int, int]  # (index from 1, count)


def parse_shard(text: str) -> Shard:
    """'2/8' -> (2, 8); raises ValueError unless it is i/n with 1 <= i <= n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"--shard {text}: expected i/n with 1 <= i <= n, e.g. 2/8")
    return int(match[1]), int(match[2])


def name_tracks(files: list[Path]) -> list[tuple[Path, str]]:
    """(file, track name) in order; a name met again becomes 'name (2)', 'name (3)'... so two
    inputs never share (and overwrite) outputs."""
    used: dict[str, int] = {}
    named = []
    for path in files:
        name = track_name(path)
        used[name] = used.get(name, 0) + 1
        named.append((path, name if used[name] == 1 else f"{name} ({used[name]})"))
    return named


def batch_tracks(files: list[Path], shard: Shard | None = None) -> list[tuple[Path, str]]:
    """(file, track name) of each file the batch separates: all of `files` in their order, or
    the shard's part of the sorted, de-duplicated absolute paths (see the module's docstring)."""
    if shard is None:
        return name_tracks(files)
    index, count = shard
    catalog = sorted({Path(os.path.abspath(path)) for path in files})
    return name_tracks(catalog)[index - 1:: count]


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """For the block, SIGTERM raises Interrupted where it is at its default (which would end the
    process at once, leaving temporaries), so it unwinds the writers as SIGINT's KeyboardInterrupt
    does. Handlers someone installed (the CLI's) are left alone, as is every thread but the main one."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        clear_interrupted()


def separate_track(separator: Separator, path: Path, name: str, out_dir: Path, *,
                   progress: Callable[[int, int], None] | None = None,
                   on_error: Callable[[Path, Exception], None] | None = None, **options) -> FileResult:
    """One input of a batch: `files.separate_file(separator, path, out_dir, track=name, progress=
    progress, **options)`, where a failure becomes a failed result (`error`: its one line).

    An unexpected failure (not a StemsError) does too, after `on_error(path, error)`, which is
    called inside the `except` (the CLI prints the traceback there). What is not an Exception
    (KeyboardInterrupt, Interrupted, a caller's cancellation) passes through, once the writers
    have removed their partial files."""
    started = time.perf_counter()
    try:
        return separate_file(separator, path, out_dir, track=name, progress=progress, **options)
    except StemsError as error:
        result = FileResult(path, error=str(error))
    except Exception as error:  # an unexpected failure of one file must not stop the batch
        if on_error is not None:
            on_error(path, error)
        result = FileResult(path, error=f"{path}: {type(error).__name__}: {error}")
    result.seconds = time.perf_counter() - started
    return result


class Batch:
    """Many inputs separated into one output directory, in bounded memory, one model load.

    Args:
        inputs: audio files and folders (searched recursively, sorted).
        shard: (i, n) or "i/n": only the shard's part of the inputs (see the module's docstring).

    Attributes:
        files: every audio file found in `inputs`.
        tracks: (file, track name) of each file this batch (this shard) separates, in order.
        problems: (input, why) of each input that is neither an audio file nor a folder holding one.
    """

    def __init__(self, inputs: Iterable[Path | str], shard: Shard | str | None = None):
        self.shard = parse_shard(shard) if isinstance(shard, str) else shard
        self.files, self.problems = find_audio_files([Path(p).expanduser() for p in inputs])
        self.tracks = batch_tracks(self.files, self.shard)

    def run(
        self,
        separator: Separator,
        out_dir: Path | str,
        *,
        manifest: Manifest | Path | str | None = None,
        on_start: Callable[[Path], None] | None = None,
        progress: Callable[[Path, int, int], None] | None = None,
        on_result: Callable[[FileResult], None] | None = None,
        on_error: Callable[[Path, Exception], None] | None = None,
        **options,
    ) -> list[FileResult]:
        """Separate every track in order with `separate_track(separator, path, name, out_dir,
        **options)`; options: stems, two_stems, mask, fmt, template, float_output, codec,
        overwrite, skip_existing. Returns one FileResult per track.

        A file that fails becomes a failed result (`error`: its one line) and the batch goes on;
        so does one that fails unexpectedly (not a StemsError), after `on_error(path, error)`.

        Args:
            manifest: a .jsonl path (appended to; created with its folder) or an open Manifest:
                each result's line is added as it finishes. A manifest that cannot be opened or
                written raises StemsError and stops the batch.
            on_start: called with each input before it is read.
            progress: called with (input, samples done, samples in all) as it is separated.
            on_result: called with each result, after its manifest line.

        SIGINT (KeyboardInterrupt) and SIGTERM (Interrupted, where it is at its default) stop
        the batch by unwinding it: finished outputs and their manifest lines stay, the file in
        progress leaves nothing.
        """
        out_dir = Path(out_dir)
        with contextlib.ExitStack() as stack:
            log = manifest
            if log is not None and not isinstance(log, Manifest):
                log = stack.enter_context(Manifest(Path(log)))
            stack.enter_context(sigterm_unwinds())
            results = []
            for path, name in self.tracks:
                check_interrupted()
                if on_start is not None:
                    on_start(path)
                report = None if progress is None else functools.partial(progress, path)
                result = separate_track(separator, path, name, out_dir, progress=report, on_error=on_error, **options)
                results.append(result)
                if log is not None:
                    log.add(result)
                if on_result is not None:
                    on_result(result)
        return results
