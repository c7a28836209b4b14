"""Errors that DAW raises on purpose, each mapped to an exit status by the CLI."""

from __future__ import annotations


class DawError(Exception):
    """Base of every error that DAW reports to the user without a traceback.

    ``hint`` is a one-line fix shown under the message.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(DawError):
    """A command-line argument or option is invalid."""


class ConfigError(DawError):
    """A policy, configuration file or imported report is invalid.

    ``path`` and ``line`` name where the problem is, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}", hint=hint)
        self.path = path
        self.line = line


class GitError(DawError):
    """A git command failed, or the folder is not a git repository."""


class StoreError(DawError):
    """The run store could not be read or written, or a run is not found."""
