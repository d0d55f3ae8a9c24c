"""What stems raises: StemsError, the one exception type the CLI turns into a one-line error, and
Interrupted, a signal that unwinds every writer."""


class StemsError(Exception):
    """A problem with an input, output or checkpoint, stated in one line that names the file."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM (raised by the handlers of `stems.cli.main`, and by SIGTERM during a
    `batch.Batch` run): a BaseException, so it passes through `except Exception` and click's
    handlers to unwind every writer."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
