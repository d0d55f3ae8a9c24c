"""What stems raises: StemsError, the one exception type the CLI turns into a one-line error;
MissingExtra, the StemsError of a training extra that is not installed; and Interrupted, a signal
that unwinds every writer, raised by `interrupt` and again by `check_interrupted` where Python
dropped it."""

# The import names of pyproject.toml's `train` extra (a test keeps the two lists equal): what
# training (and its augmentation), evaluation, dataset building, plots, the torch runtime and ONNX export import, and an
# inference-only install (`pip install .`) lacks.
TRAIN_EXTRAS = ("torch", "onnx", "scipy", "musdb", "museval", "stempeg", "matplotlib", "mido", "audiomentations")


class StemsError(Exception):
    """A problem with an input, output or checkpoint, stated in one line that names the file."""


class MissingExtra(StemsError):
    """`what` (a command, a runtime) needs a training extra that is not installed.

    Attributes:
        module: the missing extra's top-level module, one of TRAIN_EXTRAS.
    """

    def __init__(self, what: str, module: str):
        super().__init__(f"{what} needs the training extras ({module} is not installed): pip install '.[train]' in the stems checkout")
        self.module = module

    @staticmethod
    def module_of(error: ImportError) -> str | None:
        """The training extra whose absence raised `error` (museval installed without scipy: scipy);
        None for any other module."""
        module = (error.name or "").partition(".")[0]
        return module if isinstance(error, ModuleNotFoundError) and module in TRAIN_EXTRAS else None


class Interrupted(BaseException):
    """SIGINT or SIGTERM (raised by the handlers of `stems.cli.main`, and by SIGTERM during a
    `batch.Batch` run): a BaseException, so it passes through `except Exception` and click's
    handlers to unwind every writer."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_pending: int | None = None  # the signal `interrupt` raised last, until `clear_interrupted`


def interrupt(signum: int, frame=None) -> None:
    """A signal handler: raise Interrupted(signum) where the main thread is, and remember it.
    Python drops an exception raised inside a __del__ or a weakref callback (with "Exception
    ignored in ..."), so a signal landing there would be lost: `check_interrupted` raises it
    again at the next safe point."""
    global _pending
    _pending = signum
    raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise Interrupted again if a signal arrived through `interrupt` and was not cleared."""
    if _pending is not None:
        raise Interrupted(_pending)


def pending_interrupt() -> int | None:
    """The signal `interrupt` raised and nobody cleared, or None."""
    return _pending


def clear_interrupted() -> None:
    """Forget the signal: `batch.sigterm_unwinds` calls this when the handler it installed goes, so
    a library caller's next batch does not stop at once. (The CLI, which ends on the signal, keeps it.)"""
    global _pending
    _pending = None
