"""Which inputs a batch separates, under which track names, and how a catalog is split into shards.

A shard `i/n` takes every n-th file, starting at the (i-1)-th, of the sorted, de-duplicated list
of absolute paths, so n machines given the same inputs (a SLURM job array, a Kubernetes indexed
job, GNU parallel) share a catalog out without a coordinator. Track names are given over the
whole list before it is split, so two files with one name get the same distinct names on every
machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .files import track_name

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
