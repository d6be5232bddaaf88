"""One exception type for mistakes a user can fix.

The CLI turns a ``UserError`` into a single ``zerolm-prune: error: ...`` line and exit code 2;
anything else is a bug and keeps its traceback. Messages say what was wrong and what to do.
"""


class UserError(Exception):
    """A bad argument, file or environment that the user can correct."""


class SecretInOutput(UserError, ValueError):
    """Something about to be written holds an access token (a ValueError for older callers)."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that staging folders and locks are cleaned up as for
    Ctrl-C (a BaseException: ``except Exception`` blocks must not swallow it)."""
