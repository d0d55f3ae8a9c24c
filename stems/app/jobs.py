"""The queue of `stems app`: each uploaded file is a Job, and one worker thread separates the jobs
in order through the same code as `stems separate` (`batch.separate_track`: `files.separate_file`
and the writer registry), loading each model once and keeping it.

A job is cancelled between two chunks: the progress callback raises `Cancelled`, which unwinds
`separate_file` so that its writers remove every partial file, as SIGINT does (`Interrupted`,
which the worker treats the same way). A job that fails or is cancelled leaves nothing behind:
not its upload, not an empty track folder.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..batch import separate_track
from ..errors import StemsError
from ..presets import PRESETS, stem_list
from ..separator import Separator
from ..stemmp4 import STEM_MP4
from ..writers import BUNDLE_FORMATS, PER_STEM_FORMATS

OUTPUTS = {"four": "Four stems", "karaoke": "Karaoke (no vocals)", "acapella": "Acapella (vocals)", "dj": "DJ stem file"}


class Cancelled(BaseException):
    """A running job cancelled from the page: a BaseException, like Interrupted, so that it passes
    the batch's `except Exception` and unwinds the writers."""


@dataclass(frozen=True)
class Choice:
    """What a job makes: a model name, outputs (a key of OUTPUTS) and a per-stem format."""

    model: str
    outputs: str = "four"
    fmt: str = "wav"

    def options(self) -> dict:
        """separate_file's stems and fmt: a preset's one-file format (dj) wins over the chosen one."""
        preset = PRESETS.get(self.outputs)
        bundle = preset is not None and preset.fmt in BUNDLE_FORMATS
        return {"stems": stem_list(preset.stems if preset else None), "fmt": preset.fmt if bundle else self.fmt}

    def as_json(self) -> dict:
        return {"model": self.model, "outputs": self.outputs, "format": self.fmt}


def parse_choice(value: dict, models: list[str]) -> Choice:
    """A Choice from the page's {"model", "outputs", "format"}; StemsError for anything else."""
    try:
        choice = Choice(str(value["model"]), str(value["outputs"]), str(value["format"]))
    except (KeyError, TypeError):
        raise StemsError("expected {\"model\", \"outputs\", \"format\"}") from None
    for what, given, allowed in (("model", choice.model, models), ("outputs", choice.outputs, list(OUTPUTS)),
                                 ("format", choice.fmt, list(PER_STEM_FORMATS))):
        if given not in allowed:
            raise StemsError(f"{what} '{given}': choose from {', '.join(allowed)}")
    return choice


@dataclass
class Job:
    id: int
    name: str  # the file's name as sent, made safe (uploads.safe_name)
    upload: Path
    track: str  # the output's track name, unique in the library
    choice: Choice
    state: str = "queued"
    done: int = 0  # samples written, of `total`
    total: int = 0
    error: str | None = None
    key: str | None = None  # the library track it made (its folder's or file's name)
    seconds: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_json(self) -> dict:
        return {"id": self.id, "name": self.name, "state": self.state, "progress": self.done / self.total if self.total else 0.0,
                "error": self.error, "track": self.key, "seconds": round(self.seconds, 2), **self.choice.as_json()}


def _one_line(error: str, job: Job) -> str:
    """The error as the page shows it: about the user's file, not our copy of it."""
    return (error.splitlines() or ["failed"])[0].replace(str(job.upload), job.name)


class JobQueue:
    """The jobs of one launch, separated in order by one worker thread into `out_dir`.

    Args:
        out_dir: the library.
        load: the Separator for a model name (called once per name; StemsError fails the job).
    """

    def __init__(self, out_dir: Path, load: Callable[[str], Separator]):
        self.out_dir, self.load = out_dir, load
        self.jobs: list[Job] = []
        self.version = 0  # bumped at every change, for the page's long poll
        self.changed = threading.Condition()
        self.models: dict[str, Separator] = {}
        self.ids = itertools.count(1)
        self.closing = False
        self.worker = threading.Thread(target=self._work, name="stems-app-worker", daemon=True)
        self.worker.start()

    def add(self, name: str, upload: Path, choice: Choice) -> Job:
        """Queue `upload` (which the queue now owns and removes when the job ends); StemsError
        once the queue is closing."""
        with self.changed:
            if self.closing:
                upload.unlink(missing_ok=True)
                raise StemsError("the app is stopping")
            job = Job(next(self.ids), name, upload, self._track_name(name), choice)
            self.jobs.append(job)
            self._bump()
        return job

    def _track_name(self, name: str) -> str:
        """The file's name without its extension, made unique: "song", "song (2)"... Taken are
        tracks in the library (a folder or a .stem.mp4) and those of jobs not yet ended."""
        from ..files import track_name

        base = track_name(Path(name)) or "untitled"
        pending = {job.track for job in self.jobs if job.state in ("queued", "running")}
        for number in itertools.count(1):
            candidate = base if number == 1 else f"{base} ({number})"
            if candidate not in pending and not any(
                    (self.out_dir / f"{candidate}{suffix}").exists() for suffix in ("", f".{STEM_MP4}")):
                return candidate
        raise AssertionError("unreachable")

    def cancel(self, job_id: int) -> Job | None:
        """Cancel a queued or running job (a running one stops at its next chunk); None if unknown."""
        with self.changed:
            job = next((job for job in self.jobs if job.id == job_id), None)
            if job is not None and job.state in ("queued", "running"):
                job.cancel.set()
                if job.state == "queued":
                    self._end(job, "cancelled")
        return job

    def snapshot(self, since: int | None = None, timeout: float = 0.0) -> tuple[int, list[dict]]:
        """(version, every job as JSON); with `since`, waits up to `timeout` s for a newer version."""
        with self.changed:
            if since is not None:
                self.changed.wait_for(lambda: self.version != since or self.closing, timeout)
            return self.version, [job.as_json() for job in self.jobs]

    def close(self, timeout: float = 60.0) -> None:
        """Cancel every job (the running one removes its partial files) and wait for the worker."""
        with self.changed:
            self.closing = True
            for job in self.jobs:
                job.cancel.set()
                if job.state == "queued":
                    self._end(job, "cancelled")
            self._bump()
        self.worker.join(timeout)

    def _bump(self) -> None:
        self.version += 1
        self.changed.notify_all()

    def _next(self) -> Job | None:
        with self.changed:
            self.changed.wait_for(lambda: self.closing or any(job.state == "queued" for job in self.jobs))
            if self.closing:
                return None
            job = next(job for job in self.jobs if job.state == "queued")
            job.state = "running"
            self._bump()
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            started = time.perf_counter()
            try:
                state, error = self._run(job)
            except StemsError as problem:  # e.g. a model that does not load
                state, error = "failed", _one_line(str(problem), job)
            except Exception as problem:  # unexpected, outside the separation: this job fails, the queue goes on
                state, error = "failed", _one_line(f"{type(problem).__name__}: {problem}", job)
            except BaseException:  # Cancelled, or Interrupted (SIGINT, SIGTERM) reaching this thread
                state, error = "cancelled", None
            job.seconds = time.perf_counter() - started
            with self.changed:
                job.error = error
                self._end(job, state)

    def _run(self, job: Job) -> tuple[str, str | None]:
        """Separate one job: ("done", None) or ("failed", its one-line error)."""
        if job.choice.model not in self.models:
            self.models[job.choice.model] = self.load(job.choice.model)
        if job.cancel.is_set():
            raise Cancelled

        def progress(done: int, total: int) -> None:
            with self.changed:
                job.done, job.total = done, total
                self._bump()
            if job.cancel.is_set():
                raise Cancelled

        result = separate_track(self.models[job.choice.model], job.upload, job.track, self.out_dir,
                                progress=progress, **job.choice.options())
        if not result.ok:
            return "failed", _one_line(result.error, job)
        job.key = next(iter(result.outputs.values())).relative_to(self.out_dir).parts[0]
        return "done", None

    def _end(self, job: Job, state: str) -> None:
        """Set the final state (the caller holds the lock) and remove what the job leaves behind."""
        job.state = state
        job.upload.unlink(missing_ok=True)
        if state != "done":
            try:
                (self.out_dir / job.track).rmdir()  # the track folder a writer made, now empty
            except OSError:
                pass
        self._bump()
