"""Tests of the fork strategies against real PostgreSQL servers and SQLite files.

The snapshot and basebackup tests run a source cluster of their own (initdb) on a
loop-mounted XFS image with reflink=1, because the machine's disk is ext4 and its
PostgreSQL server accepts no replication connection.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from daw.errors import UsageError
from daw.migrate import forks
from daw.migrate.dburl import DatabaseUrl, parse_url
from daw.migrate.forks import ForkState, StrategyUnavailable
from daw.migrate.forks.basebackup import BasebackupStrategy
from daw.migrate.forks.cluster import as_service_user, free_port, postgres_bindir
from daw.migrate.forks.snapshot import SnapshotStrategy
from daw.migrate.forks.sqlite import SqliteBackupStrategy, SqliteReflinkStrategy
from daw.migrate.forks.template import TemplateStrategy

IMAGE_BYTES = 1536 * 1024 * 1024


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


def _seed(url: str, rows: int = 10_000) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL,"
            " balance int NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "INSERT INTO accounts (email) SELECT 'user' || g || '@example.invalid'"
            " FROM generate_series(1, %s) g",
            (rows,),
        )


def _count(url: DatabaseUrl | str, table: str = "accounts") -> int:
    text = url.render() if isinstance(url, DatabaseUrl) else url
    with psycopg.connect(text, autocommit=True) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture(scope="session")
def xfs_mount() -> Iterator[Path]:
    """A loop-mounted XFS filesystem with reflink=1, unmounted and deleted after."""
    if shutil.which("mkfs.xfs") is None:
        pytest.skip("mkfs.xfs is missing: apt-get install -y xfsprogs")
    # The postgres OS user must reach the mount, and pytest's folders are 0700.
    base = Path(tempfile.mkdtemp(prefix="daw_test_xfs_"))
    base.chmod(0o755)
    image, mount = base / "volume.img", base / "mnt"
    mount.mkdir()
    with image.open("wb") as handle:
        handle.truncate(IMAGE_BYTES)
    made = _run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)])
    assert made.returncode == 0, made.stderr
    mounted = _run(["mount", "-o", "loop", str(image), str(mount)])
    if mounted.returncode != 0:
        pytest.skip(f"loop mounts are not possible here: {mounted.stderr.strip()}")
    os.chmod(mount, 0o755)  # nosec B103 - the postgres user must enter it
    try:
        yield mount
    finally:
        _run(["umount", str(mount)])
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def xfs_cluster(xfs_mount: Path) -> Iterator[DatabaseUrl]:
    """A PostgreSQL 15 cluster of its own, data folder on XFS, trust and replication."""
    bindir = postgres_bindir(15)
    home = xfs_mount / "cluster"
    home.mkdir()
    shutil.chown(home, "postgres", "postgres")
    data = home / "data"
    init = _run(
        as_service_user(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        )
    )
    assert init.returncode == 0, init.stderr
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} "
        f"-c unix_socket_directories={home}"
    )
    start = _run(
        as_service_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(home / "log"),
                "-w",
                "-o",
                options,
                "start",
            ]
        )
    )
    assert start.returncode == 0, start.stderr
    try:
        yield parse_url(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        _run(
            as_service_user(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
            )
        )


@pytest.fixture
def cluster_db(xfs_cluster: DatabaseUrl) -> Iterator[DatabaseUrl]:
    """A seeded database ``daw_test_source`` on the XFS cluster, dropped after."""
    admin = xfs_cluster.render()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE daw_test_source")
    url = xfs_cluster.with_database("daw_test_source")
    _seed(url.render())
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS daw_test_source WITH (FORCE)")


def _run_id(tag: str) -> str:
    """Return a run id unique to this test, so concurrent runs on one server differ."""
    return f"{tag}_{secrets.token_hex(4)}"


@pytest.fixture
def state(tmp_path: Path) -> ForkState:
    return ForkState(tmp_path / "forks")


def _database_exists(url: DatabaseUrl, name: str) -> bool:
    with psycopg.connect(
        url.with_database("postgres").render(), autocommit=True
    ) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return row.fetchone() is not None


def test_template_fork_copies_rows(pg_url: str, state: ForkState) -> None:
    _seed(pg_url)
    source = parse_url(pg_url)
    fork = TemplateStrategy().create(source, _run_id("t1"), state)
    try:
        assert _count(fork.url) == 10_000
        assert fork.bytes_copied > 0
        assert fork.name == f"daw_fork_{fork.run_id}"
    finally:
        TemplateStrategy().discard(fork)
    assert not _database_exists(source, fork.name)


def test_template_fork_labelled(pg_url: str, state: ForkState) -> None:
    _seed(pg_url, rows=10)
    source = parse_url(pg_url)
    run_id = _run_id("t2")
    fork = TemplateStrategy().create(source, run_id, state)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            comment = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                " WHERE datname = %s",
                (fork.name,),
            ).fetchone()[0]
        label = json.loads(comment)
        assert label["run_id"] == run_id
        assert label["pid"] == os.getpid()
        assert label["source"] == source.redacted()
        assert state.path_of(fork.name).is_file()
    finally:
        TemplateStrategy().discard(fork)


def test_template_refuses_open_sessions(pg_url: str, state: ForkState) -> None:
    _seed(pg_url, rows=10)
    with psycopg.connect(pg_url) as other:
        pid = other.info.backend_pid
        started = time.monotonic()
        with pytest.raises(StrategyUnavailable) as caught:
            TemplateStrategy().create(parse_url(pg_url), _run_id("t3"), state)
        elapsed = time.monotonic() - started
    assert f"1 other session is connected to {parse_url(pg_url).database}" in (
        caught.value.message
    )
    assert f"(pids {pid})" in caught.value.message
    assert "--strategy basebackup" in caught.value.message
    assert elapsed < 3.0
    assert state.load_all() == []


def test_basebackup_works_with_sessions(
    cluster_db: DatabaseUrl, state: ForkState
) -> None:
    with psycopg.connect(cluster_db.render()):
        assert TemplateStrategy().unavailable(cluster_db) is not None
        fork = BasebackupStrategy().create(cluster_db, _run_id("b1"), state)
    folder = Path(fork.details["folder"])
    try:
        assert _count(fork.url) == 10_000
        assert fork.url.port != cluster_db.port
        assert fork.url.host == "127.0.0.1"
        assert fork.bytes_copied > 10_000_000
    finally:
        BasebackupStrategy().discard(fork)
    assert not folder.exists()


def test_basebackup_fork_is_independent(
    cluster_db: DatabaseUrl, state: ForkState
) -> None:
    fork = BasebackupStrategy().create(cluster_db, _run_id("b2"), state)
    try:
        with psycopg.connect(fork.url.render(), autocommit=True) as conn:
            conn.execute("DELETE FROM accounts")
        assert _count(cluster_db) == 10_000
    finally:
        BasebackupStrategy().discard(fork)


def test_basebackup_needs_replication_role(xfs_cluster: DatabaseUrl) -> None:
    with psycopg.connect(xfs_cluster.render(), autocommit=True) as conn:
        conn.execute("CREATE ROLE daw_test_norepl LOGIN")
    try:
        url = parse_url(
            f"postgresql://daw_test_norepl@127.0.0.1:{xfs_cluster.port}/postgres"
        )
        reason = BasebackupStrategy().unavailable(url)
    finally:
        with psycopg.connect(xfs_cluster.render(), autocommit=True) as conn:
            conn.execute("DROP ROLE daw_test_norepl")
    assert reason is not None
    assert "neither the REPLICATION nor the SUPERUSER attribute" in reason


def test_basebackup_explains_pg_hba(pg_url: str) -> None:
    reason = BasebackupStrategy().unavailable(parse_url(pg_url))
    if reason is None:
        pytest.skip("this server accepts replication connections")
    assert "rejects replication connections" in reason
    assert "pg_hba.conf" in reason


def test_snapshot_clone_is_consistent(
    cluster_db: DatabaseUrl, state: ForkState
) -> None:
    with psycopg.connect(cluster_db.render()) as busy:
        busy.execute("INSERT INTO accounts (email) VALUES ('during@example.invalid')")
        busy.commit()
        fork = SnapshotStrategy().create(cluster_db, _run_id("s1"), state)
    folder = Path(fork.details["folder"])
    try:
        assert _count(fork.url) == 10_001
        with psycopg.connect(fork.url.render(), autocommit=True) as conn:
            conn.execute("TRUNCATE accounts")
        assert _count(cluster_db) == 10_001
        assert folder.parent == Path(cluster_db_data_dir(cluster_db)).parent
    finally:
        SnapshotStrategy().discard(fork)
    assert not folder.exists()


def cluster_db_data_dir(url: DatabaseUrl) -> str:
    with psycopg.connect(url.render(), autocommit=True) as conn:
        return conn.execute("SHOW data_directory").fetchone()[0]


def test_snapshot_rejects_ext4(pg_url: str) -> None:
    reason = SnapshotStrategy().unavailable(parse_url(pg_url))
    assert reason is not None
    assert "does not support reflink copies (ext4)" in reason
    assert "use a btrfs or XFS (reflink=1) volume or another strategy" in reason


def test_choose_prefers_snapshot(cluster_db: DatabaseUrl) -> None:
    choice = forks.choose_strategy(cluster_db)
    assert choice.strategy is not None
    assert choice.strategy.name == "snapshot"


def test_choose_template_on_ext4(pg_url: str) -> None:
    choice = forks.choose_strategy(parse_url(pg_url))
    assert choice.strategy is not None
    assert choice.strategy.name == "template"
    assert "snapshot" in choice.rejected


def test_choose_override_wrong_kind(sqlite_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot fork a sqlite database"):
        forks.choose_strategy(parse_url(str(sqlite_path)), "template")


def test_sqlite_backup_fork(sqlite_path: Path, state: ForkState) -> None:
    source = parse_url(str(sqlite_path))
    fork = SqliteBackupStrategy().create(source, _run_id("q1"), state)
    conn = sqlite3.connect(fork.url.sqlite_path)
    try:
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 3
        conn.execute("DELETE FROM customers")
        conn.commit()
    finally:
        conn.close()
    source_conn = sqlite3.connect(sqlite_path)
    try:
        assert source_conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 3
    finally:
        source_conn.close()
    SqliteBackupStrategy().discard(fork)
    assert not fork.url.sqlite_path.parent.exists()


def test_sqlite_reflink_on_xfs(
    xfs_mount: Path, sqlite_path: Path, state: ForkState
) -> None:
    folder = xfs_mount / "sqlite"
    folder.mkdir(exist_ok=True)
    copy = folder / "app.sqlite3"
    shutil.copy(sqlite_path, copy)
    fork = SqliteReflinkStrategy().create(parse_url(str(copy)), _run_id("q2"), state)
    try:
        conn = sqlite3.connect(fork.url.sqlite_path)
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 3
        conn.close()
    finally:
        SqliteReflinkStrategy().discard(fork)
        copy.unlink()


def test_sqlite_reflink_rejects_ext4(sqlite_path: Path) -> None:
    reason = SqliteReflinkStrategy().unavailable(parse_url(str(sqlite_path)))
    assert reason is not None
    assert "does not support reflink copies" in reason


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_orphan_listed_and_cleaned(pg_url: str, state: ForkState) -> None:
    _seed(pg_url, rows=10)
    source = parse_url(pg_url)
    fork = TemplateStrategy().create(source, _run_id("o1"), state)
    path = state.path_of(fork.name)
    data = json.loads(path.read_text())
    data["pid"] = _dead_pid()
    path.write_text(json.dumps(data))
    listed = {listing.name: listing for listing in forks.list_forks(state, [source])}
    assert listed[fork.name].orphan is True
    removed = forks.cleanup(state, [source])
    # Orphans of other runs on the shared server may be removed too.
    assert fork.name in [listing.name for listing in removed]
    assert not _database_exists(source, fork.name)
    assert not path.exists()


def test_live_fork_not_cleaned(pg_url: str, state: ForkState) -> None:
    _seed(pg_url, rows=10)
    source = parse_url(pg_url)
    fork = TemplateStrategy().create(source, _run_id("o2"), state)
    try:
        assert forks.cleanup(state, [source]) == []
        assert _database_exists(source, fork.name)
    finally:
        TemplateStrategy().discard(fork)


def test_unrecorded_labelled_fork_found(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url, rows=10)
    source = parse_url(pg_url)
    run_id = _run_id("o3")
    fork = TemplateStrategy().create(source, run_id, ForkState(tmp_path / "elsewhere"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        label = json.dumps(
            {"run_id": run_id, "pid": _dead_pid(), "host": os.uname().nodename}
        )
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(fork.name), sql.Literal(label)
            )
        )
    empty = ForkState(tmp_path / "empty")
    listed = [
        item for item in forks.list_forks(empty, [source]) if item.name == fork.name
    ]
    assert listed[0].found_by == "server"
    assert listed[0].orphan is True
    forks.cleanup(empty, [source])
    assert not _database_exists(source, fork.name)
