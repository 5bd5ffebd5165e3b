"""Errors that reach the user as a readable message and an exit code, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad flag, missing file, port taken, service unreachable).

    The message should say what went wrong and what to do next.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
