"""Promotion: apply the rehearsed migrations to production, with lock and time limits.

Each migration runs in one transaction unless one of its statements cannot run
inside a transaction block (``CREATE INDEX CONCURRENTLY`` and the like), so a
failing transactional migration leaves production as it was. PostgreSQL
sessions get ``SET lock_timeout`` (default 5 s: a statement that cannot get its
lock within that time fails instead of queueing every later query behind it)
and ``SET statement_timeout`` (default 15 min).

NOTE: several pending migrations are applied one transaction each, because
``SqlFolderSource.apply`` opens its own transaction. When migration N fails,
migrations 1 to N-1 stay applied (and recorded), and the result lists them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from daw.migrate.dburl import DatabaseUrl, connect
from daw.migrate.errors import MigrationError, MigrationFailed
from daw.migrate.measure import StatementRecorder
from daw.migrate.sources import AlembicSource, Migration, SqlFolderSource

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT_S = 5.0
DEFAULT_STATEMENT_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Limits:
    """Timeouts in seconds for applying to a PostgreSQL database (0 disables one)."""

    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S

    def settings(self) -> dict[str, str]:
        return {
            "lock_timeout": f"{int(self.lock_timeout_s * 1000)}ms",
            "statement_timeout": f"{int(self.statement_timeout_s * 1000)}ms",
        }


@dataclass
class ApplyResult:
    """The outcome of applying: versions applied in order, timings, seconds, error."""

    applied: list[str] = field(default_factory=list)
    recorder: StatementRecorder = field(default_factory=StatementRecorder)
    seconds: float = 0.0
    error: str | None = None
    failed_migration: str | None = None
    partial: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> dict[str, Any]:
        return {
            "applied": list(self.applied),
            "seconds": round(self.seconds, 4),
            "error": self.error,
            "failed_migration": self.failed_migration,
            "partial": self.partial,
        }


def apply_migrations(
    url: DatabaseUrl,
    source: SqlFolderSource | AlembicSource,
    migrations: Sequence[Migration],
    *,
    limits: Limits | None = None,
    on_connect: Callable[[Any], None] | None = None,
) -> ApplyResult:
    """Apply ``migrations`` to ``url`` in order, stopping at the first failure.

    ``limits`` sets the PostgreSQL timeouts (None: no limit, as on a fork).
    ``on_connect`` receives the open connection before the first statement,
    which the lock sampler uses to learn the backend pid. Failures of the
    migration itself are returned in the result; connection errors raise.
    """
    result = ApplyResult()
    started = time.monotonic()
    try:
        if isinstance(source, AlembicSource):
            _apply_alembic(url, source, migrations, limits, result)
        else:
            _apply_sql(url, source, migrations, limits, on_connect, result)
    finally:
        result.seconds = time.monotonic() - started
    return result


def _apply_sql(
    url: DatabaseUrl,
    source: SqlFolderSource,
    migrations: Sequence[Migration],
    limits: Limits | None,
    on_connect: Callable[[Any], None] | None,
    result: ApplyResult,
) -> None:
    conn = connect(url, autocommit=True)
    try:
        if limits is not None and url.kind == "postgresql":
            for name, value in limits.settings().items():
                conn.execute(f"SET {name} = '{value}'")
        if on_connect is not None:
            on_connect(conn)
        for migration in migrations:
            try:
                source.apply(conn, migration, on_statement=result.recorder)
            except MigrationFailed as exc:
                _failed(result, migration, exc.message)
                return
            except MigrationError as exc:
                _failed(result, migration, exc.message)
                return
            result.applied.append(migration.version)
    finally:
        conn.close()


def _failed(result: ApplyResult, migration: Migration, message: str) -> None:
    result.error = message
    result.failed_migration = migration.path
    result.partial = bool(result.applied) or not migration.transactional
    log.error("applying %s failed: %s", migration.path, message)


def _apply_alembic(
    url: DatabaseUrl,
    source: AlembicSource,
    migrations: Sequence[Migration],
    limits: Limits | None,
    result: ApplyResult,
) -> None:
    started = time.monotonic()
    try:
        with _pgoptions(limits if url.kind == "postgresql" else None):
            source.apply_url(url.render())
    except MigrationError as exc:
        result.error = exc.message
        result.failed_migration = migrations[0].path if migrations else None
        result.partial = True
        return
    result.applied = [migration.version for migration in migrations]
    log.info("alembic upgrade took %.2f s", time.monotonic() - started)


@contextmanager
def _pgoptions(limits: Limits | None) -> Iterator[None]:
    """Pass the timeouts to Alembic's libpq connection through ``PGOPTIONS``."""
    if limits is None:
        yield
        return
    previous = os.environ.get("PGOPTIONS")
    extra = " ".join(f"-c {name}={value}" for name, value in limits.settings().items())
    os.environ["PGOPTIONS"] = f"{previous} {extra}".strip() if previous else extra
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PGOPTIONS", None)
        else:
            os.environ["PGOPTIONS"] = previous


def promote(
    url: DatabaseUrl,
    source: SqlFolderSource | AlembicSource,
    migrations: Sequence[Migration],
    *,
    limits: Limits | None = None,
) -> ApplyResult:
    """Apply ``migrations`` to production with ``limits`` (default 5 s lock, 15 min)."""
    return apply_migrations(url, source, migrations, limits=limits or Limits())
