"""The one exception type that means "the user got something wrong" (the CLI prints it on one line, exit 2)."""


class UserError(Exception):
    """A mistake in a path, a config or an argument: reported as one line, never as a traceback."""


class Stopped(Exception):
    """Training stopped early on request (SIGTERM, Ctrl-C) after saving a checkpoint; a rerun resumes."""
