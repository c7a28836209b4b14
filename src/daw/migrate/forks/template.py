"""The template strategy: ``CREATE DATABASE fork TEMPLATE source STRATEGY FILE_COPY``.

PostgreSQL 15 copies the source database's files (no WAL the size of the
database, unlike ``WAL_LOG``). The copy needs the source to have no other
session: PostgreSQL otherwise waits about 5 s and fails with "source database
... is being accessed by other users", so the sessions are checked first.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from daw.migrate.dburl import MAINTENANCE_DATABASE, DatabaseUrl, connect_postgresql
from daw.migrate.forks.base import (
    FORK_PREFIX,
    Fork,
    ForkError,
    StrategyUnavailable,
    fork_name,
    utc_now,
)

log = logging.getLogger(__name__)

OBJECT_IN_USE = "55006"
MIN_SERVER_VERSION = 150000


class TemplateStrategy:
    """Fork one database inside the same PostgreSQL server."""

    name = "template"
    kinds = ("postgresql",)

    def unavailable(self, source: DatabaseUrl) -> str | None:
        with connect_postgresql(
            source, autocommit=True, database=MAINTENANCE_DATABASE
        ) as conn:
            version = conn.info.server_version
            if version < MIN_SERVER_VERSION:
                return (
                    f"the server runs PostgreSQL {version // 10000}; the template "
                    "strategy needs STRATEGY FILE_COPY from PostgreSQL 15"
                )
            return _sessions_problem(conn, source.database)

    def create(self, source: DatabaseUrl, run_id: str, state: Any) -> Fork:
        problem = self.unavailable(source)
        if problem:
            raise StrategyUnavailable(
                problem, hint="stop those sessions, or use --strategy basebackup"
            )
        name = fork_name(run_id)
        fork = Fork(
            strategy=self.name,
            run_id=run_id,
            name=name,
            url=source.with_database(name),
            source=source.redacted(),
            created_at=utc_now(),
            details={"server": f"{source.host}:{source.port}", "database": name},
        )
        state.record(fork)
        started = time.monotonic()
        try:
            _create_database(source, fork)
        except BaseException:
            state.remove(name)
            raise
        fork.seconds = time.monotonic() - started
        fork.bytes_copied = _database_size(source, name)
        state.record(fork)
        return fork

    def discard(self, fork: Fork) -> None:
        drop_fork_database(fork.url, fork.name)


def _sessions_problem(conn, database: str) -> str | None:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid() ORDER BY pid",
        (database,),
    ).fetchall()
    if not rows:
        return None
    pids = ", ".join(str(row[0]) for row in rows)
    count = len(rows)
    noun = "session is" if count == 1 else "sessions are"
    return (
        f"{count} other {noun} connected to {database} (pids {pids}); TEMPLATE "
        "needs none: stop them, or use --strategy basebackup"
    )


def _create_database(source: DatabaseUrl, fork: Fork) -> None:
    import psycopg
    from psycopg import sql

    comment = json.dumps(
        {
            "run_id": fork.run_id,
            "source": fork.source,
            "created_at": fork.created_at,
            "pid": fork.pid,
            "host": fork.host,
        },
        sort_keys=True,
    )
    with connect_postgresql(
        source, autocommit=True, database=MAINTENANCE_DATABASE
    ) as conn:
        try:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(fork.name), sql.Identifier(source.database)
                )
            )
        except psycopg.Error as exc:
            raise _translate(exc, conn, source) from None
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(fork.name), sql.Literal(comment)
            )
        )
    log.info("created template fork %s of %s", fork.name, fork.source)


def _translate(exc, conn, source: DatabaseUrl) -> ForkError:
    if exc.sqlstate == OBJECT_IN_USE:
        problem = _sessions_problem(conn, source.database)
        return StrategyUnavailable(
            problem or f"{source.database} is being accessed by other sessions",
            hint="stop those sessions, or use --strategy basebackup",
        )
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return ForkError(
        f"CREATE DATABASE ... TEMPLATE {source.database} failed: {message}",
        hint="the user needs the CREATEDB privilege and must own the source "
        "database (or be a superuser); or use --strategy basebackup",
    )


def _database_size(source: DatabaseUrl, name: str) -> int:
    with connect_postgresql(
        source, autocommit=True, database=MAINTENANCE_DATABASE
    ) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
    return int(row[0]) if row else 0


def drop_fork_database(server: DatabaseUrl, name: str) -> None:
    """Drop fork database ``name``, ending its sessions; only ``daw_fork_`` names."""
    from psycopg import sql

    if not name.startswith(FORK_PREFIX):
        raise ForkError(
            f"refusing to drop {name!r}: fork names start with {FORK_PREFIX}"
        )
    with connect_postgresql(
        server, autocommit=True, database=MAINTENANCE_DATABASE
    ) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )
    log.info("dropped fork database %s", name)


def list_fork_databases(server: DatabaseUrl) -> list[dict[str, Any]]:
    """Return the ``daw_fork_`` databases on ``server`` with their comment's labels."""
    with connect_postgresql(
        server, autocommit=True, database=MAINTENANCE_DATABASE
    ) as conn:
        rows = conn.execute(
            "SELECT d.datname, shobj_description(d.oid, 'pg_database')"
            " FROM pg_database d WHERE d.datname LIKE %s ORDER BY d.datname",
            ("daw\\_fork\\_%",),
        ).fetchall()
    found = []
    for name, comment in rows:
        try:
            label = json.loads(comment) if comment else {}
        except ValueError:
            label = {}
        found.append({"name": name, "label": label if isinstance(label, dict) else {}})
    return found
