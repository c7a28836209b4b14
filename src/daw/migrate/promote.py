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
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from daw.errors import UsageError
from daw.migrate.dburl import DatabaseUrl, connect
from daw.migrate.errors import MigrationError
from daw.migrate.measure import StatementRecorder
from daw.migrate.sources import AlembicSource, Migration, SqlFolderSource
from daw.redact import redact

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT_S = 5.0
DEFAULT_STATEMENT_TIMEOUT_S = 900.0
# PostgreSQL stores both timeouts as a 32-bit count of milliseconds.
MAX_TIMEOUT_S = 2_147_483.0


@dataclass(frozen=True)
class Limits:
    """Timeouts in seconds for applying to a PostgreSQL database (0 disables one)."""

    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S

    def check(self) -> None:
        """Raise UsageError unless both timeouts are finite, in 0 to MAX_TIMEOUT_S."""
        for option, value in (
            ("--lock-timeout", self.lock_timeout_s),
            ("--statement-timeout", self.statement_timeout_s),
        ):
            if not math.isfinite(value) or not 0 <= value <= MAX_TIMEOUT_S:
                raise UsageError(
                    f"invalid {option} {value}: expected seconds from 0 to "
                    f"{MAX_TIMEOUT_S:.0f}",
                    hint="give a number of seconds such as 5; 0 disables the limit",
                )

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
    migration and database errors in the session (a rejected ``SET``, a lost
    connection) are returned in the result. Only a failed connect raises, as
    DatabaseUrlError.
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
    import psycopg

    conn = connect(url, autocommit=True)
    current: Migration | None = None
    try:
        if limits is not None and url.kind == "postgresql":
            for name, value in limits.settings().items():
                conn.execute(f"SET {name} = '{value}'")
        if on_connect is not None:
            on_connect(conn)
        for migration in migrations:
            current = migration
            source.apply(conn, migration, on_statement=result.recorder)
            result.applied.append(migration.version)
    except MigrationError as exc:
        _failed(result, current, exc.message)
    except (psycopg.Error, sqlite3.Error) as exc:
        _failed(result, current, f"database error: {_first_line(exc)}")
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return redact(lines[0] if lines else type(exc).__name__)


def _failed(result: ApplyResult, migration: Migration | None, message: str) -> None:
    """Record a failure; ``migration`` is None when no migration had started."""
    result.error = message
    result.failed_migration = migration.path if migration else None
    started_autocommit = migration is not None and not migration.transactional
    result.partial = bool(result.applied) or started_autocommit
    log.error(
        "applying %s failed: %s", migration.path if migration else "nothing", message
    )


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
