"""Errors that migration sources, the linter and the apply step raise on purpose."""

from __future__ import annotations

from typing import TYPE_CHECKING

from daw.errors import DawError

if TYPE_CHECKING:
    from daw.migrate.sql import Statement


class MigrationError(DawError):
    """A migration source is invalid or cannot be read; the CLI exits with 2."""


class MigrationFailed(MigrationError):
    """A statement failed while a migration was being applied.

    ``statement`` is the statement the database rejected and ``database_message``
    is the database's error text, with any URL password removed.
    """

    def __init__(
        self,
        message: str,
        *,
        statement: Statement,
        database_message: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.statement = statement
        self.database_message = database_message
