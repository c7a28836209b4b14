"""The snapshot strategy: a copy-on-write clone of the source server's data folder.

Consistency: the clone is an online base backup. The data files are cloned with
``cp -a --reflink=always`` between ``pg_backup_start`` and ``pg_backup_stop``
(non-exclusive, in one session). A temporary physical replication slot keeps the
WAL written meanwhile, and ``pg_wal`` is cloned again after ``pg_backup_stop``.
The ``backup_label`` from ``pg_backup_stop`` makes the fork server replay that
WAL on start, so the fork is consistent as of ``pg_backup_stop``, as a
``pg_basebackup`` would be. Torn pages in the cloned files are repaired by that
replay, which is why ``full_page_writes`` must be on. The server must run on this
machine, and the fork folder must be on the same reflink-capable filesystem.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from daw.migrate.dburl import (
    MAINTENANCE_DATABASE,
    DatabaseUrl,
    connect_postgresql,
    is_local_host,
)
from daw.migrate.forks import cluster
from daw.migrate.forks.base import (
    Fork,
    ForkError,
    StrategyUnavailable,
)
from daw.migrate.forks.reflink import reflink_problem
from daw.process import ToolError, run_tool

log = logging.getLogger(__name__)

SNAPSHOT_DIR_ENV = "DAW_SNAPSHOT_DIR"
COPY_TIMEOUT_S = 3600.0

# Folders whose contents pg_basebackup also leaves out: they are rebuilt on start.
_EMPTIED = (
    "pg_replslot",
    "pg_stat_tmp",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
)
_REMOVED = ("postmaster.pid", "postmaster.opts", "standby.signal", "recovery.signal")


class SnapshotStrategy:
    """Fork a local PostgreSQL server by cloning its data folder copy-on-write."""

    name = "snapshot"
    kinds = ("postgresql",)

    def __init__(self, base_dir: Path | None = None) -> None:
        self.base_dir = base_dir

    def unavailable(self, source: DatabaseUrl) -> str | None:
        if not is_local_host(source):
            return (
                f"the server {source.host} is not on this machine; a snapshot clones "
                "the data folder, so it needs a local server"
            )
        facts = _server_facts(source)
        if isinstance(facts, str):
            return facts
        data_dir = Path(facts["data_directory"])
        return _folder_problem(data_dir, self._base_dir(data_dir))

    def create(self, source: DatabaseUrl, run_id: str, state: Any) -> Fork:
        problem = self.unavailable(source)
        if problem:
            raise StrategyUnavailable(problem)
        facts = _server_facts(source)
        assert isinstance(facts, dict)
        data_dir = Path(facts["data_directory"])
        bindir = cluster.postgres_bindir(int(facts["major"]))
        return cluster.create_cluster_fork(
            self.name,
            source,
            run_id,
            state,
            lambda name: self._base_dir(data_dir) / name,
            bindir,
            lambda fork, folder: _build(fork, source, data_dir, folder, bindir),
        )

    def discard(self, fork: Fork) -> None:
        cluster.remove_cluster_fork(fork)

    def _base_dir(self, data_dir: Path) -> Path:
        if self.base_dir is not None:
            return self.base_dir
        if os.environ.get(SNAPSHOT_DIR_ENV):
            return Path(os.environ[SNAPSHOT_DIR_ENV])
        return data_dir.parent


def _server_facts(source: DatabaseUrl) -> dict[str, Any] | str:
    """Return the data folder and version, or why a snapshot cannot be taken."""
    import psycopg

    try:
        with connect_postgresql(
            source, autocommit=True, database=MAINTENANCE_DATABASE
        ) as conn:
            data_dir = conn.execute("SHOW data_directory").fetchone()[0]
            full_pages = conn.execute("SHOW full_page_writes").fetchone()[0]
            tablespaces = conn.execute(
                "SELECT count(*) FROM pg_tablespace"
                " WHERE spcname NOT IN ('pg_default', 'pg_global')"
            ).fetchone()[0]
            major = conn.info.server_version // 10000
    except psycopg.Error as exc:
        return f"cannot read the server's data_directory: {str(exc).strip()}"
    if full_pages != "on":
        return "full_page_writes is off, so an online clone could keep torn pages"
    if tablespaces:
        return (
            "the server has tablespaces outside its data folder, which a snapshot "
            "does not clone: use --strategy basebackup"
        )
    return {"data_directory": data_dir, "major": major}


def _folder_problem(data_dir: Path, base_dir: Path) -> str | None:
    if not data_dir.is_dir():
        return f"the data folder {data_dir} is not readable from this process"
    if (data_dir / "pg_wal").is_symlink():
        return (
            f"{data_dir / 'pg_wal'} is a symlink to another folder, which a snapshot "
            "cannot clone safely: use --strategy basebackup"
        )
    if base_dir.resolve().stat().st_dev != data_dir.resolve().stat().st_dev:
        return (
            f"the fork folder {base_dir} is not on the filesystem of {data_dir}; "
            f"reflink copies work only within one filesystem (set {SNAPSHOT_DIR_ENV})"
        )
    return reflink_problem(base_dir)


def _build(
    fork: Fork, source: DatabaseUrl, data_dir: Path, folder: Path, bindir: Path
) -> None:
    folder.mkdir(mode=0o700, parents=True)
    clone = folder / "data"
    with connect_postgresql(
        source, autocommit=True, database=MAINTENANCE_DATABASE
    ) as conn:
        conn.execute(
            "SELECT pg_create_physical_replication_slot(%s, true, true)", (fork.name,)
        )
        conn.execute("SELECT pg_backup_start(%s, true)", (fork.name,))
        try:
            _clone(data_dir, clone)
        finally:
            row = conn.execute(
                "SELECT labelfile, spcmapfile FROM pg_backup_stop(false)"
            ).fetchone()
        _clone_wal(data_dir, clone)
        conn.execute("SELECT pg_drop_replication_slot(%s)", (fork.name,))
    _finish_clone(clone, label=row[0], tablespace_map=row[1])

    cluster.prepare_config(clone, password_auth=source.password is not None)
    cluster.hand_to_service_user(folder)
    port = cluster.free_port()
    fork.details["port"] = port
    fork.details["server_pid"] = cluster.start_server(
        clone, port=port, socket_dir=folder, bindir=bindir
    )
    fork.url = source.with_server("127.0.0.1", port)
    log.info("started snapshot fork %s on 127.0.0.1:%d", fork.name, port)


def _clone(source: Path, target: Path) -> None:
    """Clone a folder with ``cp -a --reflink=always``, tolerating files that vanished.

    A running server deletes temporary files while they are copied; like
    pg_basebackup, the copy skips them. Any other cp error raises ForkError.
    """
    try:
        completed = run_tool(
            ["cp", "-a", "--reflink=always", str(source), str(target)],
            cwd=target.parent,
            timeout_s=COPY_TIMEOUT_S,
        )
    except ToolError as exc:
        raise ForkError(f"the reflink copy failed: {exc}") from exc
    if completed.returncode == 0:
        return
    errors = [line for line in completed.stderr.splitlines() if line.strip()]
    if errors and all("No such file or directory" in line for line in errors):
        log.info("reflink copy skipped %d vanished files", len(errors))
        return
    raise ForkError(f"the reflink copy failed: {completed.describe()}")


def _clone_wal(data_dir: Path, clone: Path) -> None:
    shutil.rmtree(clone / "pg_wal")
    _clone(data_dir / "pg_wal", clone / "pg_wal")


def _finish_clone(clone: Path, *, label: str, tablespace_map: str) -> None:
    for name in _REMOVED:
        (clone / name).unlink(missing_ok=True)
    for name in _EMPTIED:
        folder = clone / name
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    (clone / "backup_label").write_text(label)
    if tablespace_map:
        (clone / "tablespace_map").write_text(tablespace_map)
