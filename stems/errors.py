"""The one exception type the CLI turns into a one-line error."""


class StemsError(Exception):
    """A problem with an input, output or checkpoint, stated in one line that names the file."""
