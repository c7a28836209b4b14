"""The basebackup strategy: ``pg_basebackup`` of the whole source server, started anew.

This works while other sessions use the source, because a base backup needs no
exclusive access, but it copies every database of the server and needs a
replication connection. The fork server listens on 127.0.0.1 at a free port and
the fork URL names the source's database on it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from daw.migrate.dburl import MAINTENANCE_DATABASE, DatabaseUrl, connect_postgresql
from daw.migrate.forks import cluster
from daw.migrate.forks.base import (
    Fork,
    ForkError,
    StrategyUnavailable,
)
from daw.process import ToolError, run_tool

log = logging.getLogger(__name__)

FORK_DIR_ENV = "DAW_FORK_DIR"
BACKUP_TIMEOUT_S = 3600.0
PROBE_TIMEOUT_S = 30.0


class BasebackupStrategy:
    """Fork a whole PostgreSQL server through a streamed base backup."""

    name = "basebackup"
    kinds = ("postgresql",)

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = base_dir

    def unavailable(self, source: DatabaseUrl) -> str | None:
        with connect_postgresql(
            source, autocommit=True, database=MAINTENANCE_DATABASE
        ) as conn:
            major = conn.info.server_version // 10000
            role = conn.execute(
                "SELECT rolsuper OR rolreplication FROM pg_roles"
                " WHERE rolname = current_user"
            ).fetchone()
            senders = conn.execute("SHOW max_wal_senders").fetchone()
        if not role or not role[0]:
            return (
                f"the user {source.user or '(default)'} has neither the REPLICATION "
                f"nor the SUPERUSER attribute, which pg_basebackup needs: run "
                f"ALTER ROLE {source.user or 'USER'} REPLICATION, or use another "
                "strategy"
            )
        if not senders or int(senders[0]) < 1:
            return (
                "the server has max_wal_senders = 0, so it accepts no replication "
                "connection: set max_wal_senders to at least 2 and restart it"
            )
        try:
            bindir = cluster.postgres_bindir(major)
        except ForkError as exc:
            return exc.message
        return _replication_problem(source, bindir)

    def create(self, source: DatabaseUrl, run_id: str, state: Any) -> Fork:
        problem = self.unavailable(source)
        if problem:
            raise StrategyUnavailable(problem, hint="or use --strategy template")
        major, tablespaces = _server_facts(source)
        bindir = cluster.postgres_bindir(major)
        return cluster.create_cluster_fork(
            self.name,
            source,
            run_id,
            state,
            lambda name: self._base_dir() / name,
            bindir,
            lambda fork, folder: _build(fork, source, folder, bindir, tablespaces),
        )

    def discard(self, fork: Fork) -> None:
        cluster.remove_cluster_fork(fork)

    def _base_dir(self) -> Path:
        if self.base_dir is not None:
            return self.base_dir
        return Path(os.environ.get(FORK_DIR_ENV) or tempfile.gettempdir())


def _server_facts(source: DatabaseUrl) -> tuple[int, dict[int, str]]:
    with connect_postgresql(
        source, autocommit=True, database=MAINTENANCE_DATABASE
    ) as conn:
        major = conn.info.server_version // 10000
        rows = conn.execute(
            "SELECT oid, pg_tablespace_location(oid) FROM pg_tablespace"
            " WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid"
        ).fetchall()
    return major, {int(oid): location for oid, location in rows}


def _replication_problem(source: DatabaseUrl, bindir: Path) -> str | None:
    """Open a replication connection with psql and return why it failed, if it did."""
    conninfo = source.libpq_conninfo(database="") + " replication=true"
    args = [str(bindir / "psql"), "-X", "-w", "-A", "-t", "-d", conninfo]
    args += ["-c", "IDENTIFY_SYSTEM"]
    try:
        completed = run_tool(
            args, cwd=Path("/"), timeout_s=PROBE_TIMEOUT_S, env=source.libpq_env()
        )
    except ToolError as exc:
        return f"cannot test the replication connection: {exc}"
    if completed.returncode == 0:
        return None
    return _explain_replication_failure(source, completed.stderr)


def _explain_replication_failure(source: DatabaseUrl, stderr: str) -> str:
    server = f"{source.host}:{source.port}"
    user = source.user or "USER"
    if "no pg_hba.conf entry for replication" in stderr:
        return (
            f"the server at {server} rejects replication connections from this host "
            f"for user {user} (pg_hba.conf has no matching 'replication' entry): add "
            f"'host replication {user} 127.0.0.1/32 scram-sha-256' (or this host's "
            "address) to pg_hba.conf and reload the server, or use another strategy"
        )
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else "no error output"
    return f"the replication connection to {server} failed: {detail}"


def _build(
    fork: Fork,
    source: DatabaseUrl,
    folder: Path,
    bindir: Path,
    tablespaces: dict[int, str],
) -> None:
    folder.mkdir(mode=0o700, parents=True)
    data_dir = folder / "data"
    args = [str(bindir / "pg_basebackup"), "-d", source.libpq_conninfo(database="")]
    args += ["-X", "stream", "-c", "fast", "-D", str(data_dir), "-w", "--no-sync"]
    args += ["-l", fork.name]
    for oid, location in sorted(tablespaces.items()):
        args += ["-T", f"{location}={folder / f'tablespace_{oid}'}"]
    _backup(args, folder, source)

    cluster.prepare_config(data_dir, password_auth=source.password is not None)
    cluster.hand_to_service_user(folder)
    port = cluster.free_port()
    fork.details["port"] = port
    fork.details["server_pid"] = cluster.start_server(
        data_dir, port=port, socket_dir=folder, bindir=bindir
    )
    fork.url = source.with_server("127.0.0.1", port)
    log.info("started basebackup fork %s on 127.0.0.1:%d", fork.name, port)


def _backup(args: list[str], folder: Path, source: DatabaseUrl) -> None:
    try:
        completed = run_tool(
            args, cwd=folder, timeout_s=BACKUP_TIMEOUT_S, env=source.libpq_env()
        )
    except ToolError as exc:
        raise ForkError(f"pg_basebackup failed: {exc}") from exc
    if completed.returncode != 0:
        raise ForkError(
            _explain_replication_failure(source, completed.stderr),
            hint="or use --strategy template",
        )
