"""Migration sources on real files and real databases: SQL folders and Alembic."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from daw.migrate.errors import MigrationError, MigrationFailed
from daw.migrate.lint import LintContext, lint_statements, read_lint_context
from daw.migrate.sources import (
    AlembicSource,
    SqlFolderSource,
    load_source,
    sqlalchemy_url,
)


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
    return row is not None and row[0] is not None


# SQL folders: reading


def test_folder_orders_versions_numerically(tmp_path: Path):
    root = write(
        tmp_path / "db",
        {
            "10_ten.sql": "SELECT 10",
            "9_nine.sql": "SELECT 9",
            "0001_one.sql": "SELECT 1",
        },
    )
    migrations = SqlFolderSource(root).migrations()
    assert [m.version for m in migrations] == ["1", "9", "10"]
    assert [m.name for m in migrations] == ["one", "nine", "ten"]


def test_folder_reads_flyway_names(tmp_path: Path):
    root = write(tmp_path / "db", {"V2__add_index.sql": "SELECT 2"})
    migration = SqlFolderSource(root).migrations()[0]
    assert (migration.version, migration.name, migration.path) == (
        "2",
        "add_index",
        "V2__add_index.sql",
    )


def test_folder_checksum_is_sha256_of_bytes(tmp_path: Path):
    import hashlib

    root = write(tmp_path / "db", {"0001_a.sql": "SELECT 1;\n"})
    migration = SqlFolderSource(root).migrations()[0]
    assert migration.checksum == hashlib.sha256(b"SELECT 1;\n").hexdigest()


def test_folder_statements_carry_relative_path(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": "SELECT 1;\nSELECT 2;"})
    statements = SqlFolderSource(root).migrations()[0].statements
    assert [(s.path, s.line, s.index) for s in statements] == [
        ("0001_a.sql", 1, 1),
        ("0001_a.sql", 2, 2),
    ]


def test_folder_duplicate_version_rejected(tmp_path: Path):
    root = write(tmp_path / "db", {"0002_a.sql": "SELECT 1", "2_b.sql": "SELECT 2"})
    with pytest.raises(MigrationError) as caught:
        SqlFolderSource(root).migrations()
    assert "version 2" in caught.value.message
    assert "0002_a.sql" in caught.value.message


def test_folder_versioned_non_sql_rejected(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": "SELECT 1", "0002_b.txt": "x"})
    with pytest.raises(MigrationError, match="0002_b.txt"):
        SqlFolderSource(root).migrations()


def test_folder_sql_without_version_rejected(tmp_path: Path):
    root = write(tmp_path / "db", {"setup.sql": "SELECT 1"})
    with pytest.raises(MigrationError, match="setup.sql"):
        SqlFolderSource(root).migrations()


def test_folder_ignores_other_files(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": "SELECT 1", "README.md": "notes"})
    assert len(SqlFolderSource(root).migrations()) == 1


def test_folder_non_utf8_rejected(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": b"SELECT '\xff\xfe'"})
    with pytest.raises(MigrationError, match="0001_a.sql: file is not valid UTF-8"):
        SqlFolderSource(root).migrations()


def test_folder_empty_file_rejected(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": "-- nothing yet\n"})
    with pytest.raises(MigrationError, match="no SQL statement"):
        SqlFolderSource(root).migrations()


def test_folder_transaction_control_rejected(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": "BEGIN;\nSELECT 1;\nCOMMIT;"})
    with pytest.raises(MigrationError, match="0001_a.sql:1: statement 1"):
        SqlFolderSource(root).migrations()


def test_folder_missing_rejected(tmp_path: Path):
    with pytest.raises(MigrationError, match="does not exist"):
        SqlFolderSource(tmp_path / "absent").migrations()


def test_folder_transactional_flag(tmp_path: Path):
    root = write(
        tmp_path / "db",
        {
            "0001_plain.sql": "CREATE INDEX i ON t (x)",
            "0002_concurrent.sql": "CREATE INDEX CONCURRENTLY j ON t (x)",
        },
    )
    flags = [m.transactional for m in SqlFolderSource(root).migrations()]
    assert flags == [True, False]


def test_folder_declared_row_changes(tmp_path: Path):
    sql = "-- daw: changes-rows Orders, customers\n-- daw: changes-rows items\nSELECT 1"
    root = write(tmp_path / "db", {"0001_a.sql": sql})
    migration = SqlFolderSource(root).migrations()[0]
    assert migration.declared_row_changes == frozenset({"orders", "customers", "items"})


def test_folder_unknown_directive_rejected(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": "SELECT 1;\n-- daw: change-rows x\n"})
    with pytest.raises(MigrationError, match="0001_a.sql:2: unknown directive"):
        SqlFolderSource(root).migrations()


def test_load_source_detects_sql_folder(tmp_path: Path):
    root = write(tmp_path / "db", {"0001_a.sql": "SELECT 1"})
    assert isinstance(load_source(root), SqlFolderSource)


def test_load_source_rejects_other_folder(tmp_path: Path):
    root = write(tmp_path / "docs", {"README.md": "x"})
    with pytest.raises(MigrationError) as caught:
        load_source(root)
    assert caught.value.hint is not None
    assert "alembic.ini" in caught.value.hint


# SQL folders on PostgreSQL


def test_applied_without_table_is_empty(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0001_a.sql": "SELECT 1"})
    with psycopg.connect(pg_url) as conn:
        assert SqlFolderSource(root).applied(conn) == {}


def test_apply_records_version(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0001_orders.sql": "CREATE TABLE orders (id int)"})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        migration = source.pending(conn)[0]
        source.apply(conn, migration)
        assert source.applied(conn) == {"1": migration.checksum}
        assert source.pending(conn) == []
        assert table_exists(conn, "orders")


def test_apply_reports_each_statement(tmp_path: Path, pg_url: str):
    sql = "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);"
    root = write(tmp_path / "db", {"0001_a.sql": sql})
    source = SqlFolderSource(root)
    seen: list[tuple[int, float]] = []
    with psycopg.connect(pg_url) as conn:
        source.apply(
            conn,
            source.migrations()[0],
            on_statement=lambda s, seconds: seen.append((s.index, seconds)),
        )
    assert [index for index, _ in seen] == [1, 2]
    assert all(seconds >= 0 for _, seconds in seen)


def test_apply_rolls_back_on_failure(tmp_path: Path, pg_url: str):
    sql = "CREATE TABLE orders (id int);\nALTER TABLE missing ADD COLUMN x int;"
    root = write(tmp_path / "db", {"0001_a.sql": sql})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(MigrationFailed) as caught:
            source.apply(conn, source.migrations()[0])
        assert not table_exists(conn, "orders")
        assert source.applied(conn) == {}
    assert caught.value.statement.index == 2
    assert caught.value.statement.line == 2
    assert 'relation "missing" does not exist' in caught.value.database_message
    assert caught.value.message.startswith("0001_a.sql:2: statement 2 failed")


def test_apply_restores_autocommit_setting(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0001_a.sql": "CREATE TABLE a (id int)"})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        source.apply(conn, source.migrations()[0])
        assert conn.autocommit is False


def test_apply_rejects_open_transaction(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0001_a.sql": "CREATE TABLE a (id int)"})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE caller_work (id int)")
        with pytest.raises(MigrationError, match="open transaction"):
            source.apply(conn, source.migrations()[0])


def test_apply_twice_rejected(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0001_a.sql": "CREATE TABLE a (id int)"})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        source.apply(conn, source.migrations()[0])
        with pytest.raises(MigrationError, match="already applied"):
            source.apply(conn, source.migrations()[0])


def test_concurrent_index_runs_in_autocommit(tmp_path: Path, pg_url: str):
    sql = (
        "CREATE TABLE orders (id int, status text);\n"
        "CREATE INDEX CONCURRENTLY orders_status ON orders (status);\n"
    )
    root = write(tmp_path / "db", {"0001_a.sql": sql})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        migration = source.migrations()[0]
        assert migration.transactional is False
        source.apply(conn, migration)
        assert table_exists(conn, "orders_status")


def test_autocommit_failure_keeps_earlier_statements(tmp_path: Path, pg_url: str):
    sql = (
        "CREATE TABLE orders (id int);\nCREATE INDEX CONCURRENTLY i ON missing (id);\n"
    )
    root = write(tmp_path / "db", {"0001_a.sql": sql})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(MigrationFailed) as caught:
            source.apply(conn, source.migrations()[0])
        assert table_exists(conn, "orders")
        assert source.applied(conn) == {}
    assert "1 statement(s) before it stay committed" in caught.value.message


def test_checksum_drift_rejected(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0002_x.sql": "CREATE TABLE a (id int)"})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        source.apply(conn, source.migrations()[0])
        (root / "0002_x.sql").write_text("CREATE TABLE a (id bigint)", encoding="utf-8")
        with pytest.raises(MigrationError) as caught:
            source.pending(conn)
    assert caught.value.message == "0002_x.sql was changed after it was applied"


def test_applied_version_without_file_rejected(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0001_a.sql": "CREATE TABLE a (id int)"})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        source.apply(conn, source.migrations()[0])
        (root / "0001_a.sql").unlink()
        write(root, {"0002_b.sql": "SELECT 1"})
        with pytest.raises(MigrationError, match="records migration version 1"):
            source.pending(conn)


def test_pending_older_than_applied_rejected(tmp_path: Path, pg_url: str):
    root = write(tmp_path / "db", {"0005_a.sql": "CREATE TABLE a (id int)"})
    source = SqlFolderSource(root)
    with psycopg.connect(pg_url) as conn:
        source.apply(conn, source.migrations()[0])
        write(root, {"0003_late.sql": "SELECT 1"})
        with pytest.raises(MigrationError, match="0003_late.sql is older"):
            source.pending(conn)


def test_read_lint_context_postgres(pg_url: str):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int, note varchar(20))")
        conn.execute("INSERT INTO orders SELECT g, 'x' FROM generate_series(1, 2000) g")
        conn.execute("CREATE TABLE tiny (id int)")
        context = read_lint_context(conn, large_table_bytes=32 * 1024)
    assert context.existing_tables == frozenset({"public.orders", "public.tiny"})
    assert context.large_tables == frozenset({"public.orders"})
    assert context.column_types["public.orders.note"] == "character varying(20)"


# SQL folders on SQLite


def test_sqlite_apply_and_pending(tmp_path: Path, sqlite_path: Path):
    root = write(
        tmp_path / "db",
        {
            "0001_orders.sql": "CREATE TABLE orders (id INTEGER, note TEXT);",
            "0002_seed.sql": "INSERT INTO orders (note) VALUES ('a;b');",
        },
    )
    source = SqlFolderSource(root)
    conn = sqlite3.connect(sqlite_path)
    try:
        for migration in source.pending(conn):
            source.apply(conn, migration)
        notes = conn.execute("SELECT note FROM orders").fetchall()
        assert notes == [("a;b",)]
        assert sorted(source.applied(conn)) == ["1", "2"]
        assert source.pending(conn) == []
        assert conn.isolation_level == ""
    finally:
        conn.close()


def test_sqlite_rolls_back_on_failure(tmp_path: Path, sqlite_path: Path):
    sql = "CREATE TABLE orders (id INTEGER);\nINSERT INTO missing VALUES (1);"
    root = write(tmp_path / "db", {"0001_a.sql": sql})
    source = SqlFolderSource(root)
    conn = sqlite3.connect(sqlite_path)
    try:
        with pytest.raises(MigrationFailed, match="no such table: missing"):
            source.apply(conn, source.migrations()[0])
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        assert tables == [("customers",)]
    finally:
        conn.close()


def test_read_lint_context_sqlite(sqlite_path: Path):
    conn = sqlite3.connect(sqlite_path)
    try:
        context = read_lint_context(conn, large_table_bytes=1)
    finally:
        conn.close()
    assert context.existing_tables == frozenset({"customers"})
    assert context.column_types["customers.name"] == "text"


# Alembic

ENV_PATCH = """
import os

_url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
    "DATABASE_URL"
)
if _url:
    config.set_main_option("sqlalchemy.url", _url.replace("%", "%%"))
"""

REVISION_ONE = '''"""create orders"""
from alembic import op
import sqlalchemy as sa

revision = "a1000000001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("note", sa.Text, server_default="it's; fine"),
    )


def downgrade():
    op.drop_table("orders")
'''

REVISION_TWO = '''"""add status, drop note"""
from alembic import op
import sqlalchemy as sa

revision = "b2000000002"
down_revision = "a1000000001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("orders", sa.Column("status", sa.Text, nullable=False))
    op.drop_column("orders", "note")


def downgrade():
    op.add_column("orders", sa.Column("note", sa.Text))
    op.drop_column("orders", "status")
'''


@pytest.fixture
def alembic_project(tmp_path: Path) -> Path:
    """Create an Alembic project with ``alembic init`` and two revision files."""
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(
        [sys.executable, "-m", "alembic", "init", "migrations"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    env_py = root / "migrations" / "env.py"
    text = env_py.read_text(encoding="utf-8")
    anchor = "config = context.config\n"
    env_py.write_text(text.replace(anchor, anchor + ENV_PATCH, 1), encoding="utf-8")
    versions = root / "migrations" / "versions"
    (versions / "a1000000001_create_orders.py").write_text(
        REVISION_ONE, encoding="utf-8"
    )
    (versions / "b2000000002_add_status.py").write_text(REVISION_TWO, encoding="utf-8")
    return root


def test_load_source_detects_alembic(alembic_project: Path):
    assert isinstance(load_source(alembic_project), AlembicSource)


def test_alembic_offline_sql_per_revision(alembic_project: Path):
    url = "postgresql://postgres@127.0.0.1:5432/daw_test_never_contacted"
    migrations = AlembicSource(alembic_project).migrations(url, from_current=False)
    assert [m.version for m in migrations] == ["a1000000001", "b2000000002"]
    assert migrations[1].path == "migrations/versions/b2000000002_add_status.py"
    assert migrations[1].name == "add_status"
    texts = [s.text for s in migrations[1].statements]
    assert texts == [
        "ALTER TABLE orders ADD COLUMN status TEXT NOT NULL",
        "ALTER TABLE orders DROP COLUMN note",
    ]


def test_alembic_offline_sql_lints(alembic_project: Path, pg_url: str):
    migrations = AlembicSource(alembic_project).migrations(pg_url)
    statements = [s for m in migrations for s in m.statements]
    findings = lint_statements(statements, LintContext())
    rule_ids = sorted(f.rule_id for f in findings)
    assert rule_ids == [
        "drop-column",
        "missing-lock-timeout",
        "not-null-without-default",
    ]
    assert {f.line for f in findings} == {11}


def test_alembic_online_upgrade_postgres(alembic_project: Path, pg_url: str):
    source = AlembicSource(alembic_project)
    source.apply_url(pg_url, timeout_s=120)
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'orders' ORDER BY column_name"
        ).fetchall()
    assert version == ("b2000000002",)
    assert columns == [("id",), ("status",)]
    assert source.migrations(pg_url) == []


def test_alembic_pending_starts_at_current(alembic_project: Path, pg_url: str):
    source = AlembicSource(alembic_project)
    subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"url={sqlalchemy_url(pg_url)}"]
        + ["upgrade", "a1000000001"],
        cwd=alembic_project,
        check=True,
        capture_output=True,
    )
    assert source.current_revisions(pg_url) == ["a1000000001"]
    assert [m.version for m in source.migrations(pg_url)] == ["b2000000002"]


def test_alembic_online_upgrade_sqlite(alembic_project: Path, sqlite_path: Path):
    AlembicSource(alembic_project).apply_url(f"sqlite:///{sqlite_path}", timeout_s=120)
    conn = sqlite3.connect(sqlite_path)
    try:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        conn.close()
    assert version == ("b2000000002",)


def test_alembic_failure_is_migration_error(alembic_project: Path):
    url = "postgresql://postgres:hunter2@127.0.0.1:5432/daw_test_absent_db"
    with pytest.raises(MigrationError) as caught:
        AlembicSource(alembic_project).apply_url(url, timeout_s=120)
    assert "alembic upgrade head failed" in caught.value.message
    assert "hunter2" not in caught.value.message


def test_sqlalchemy_url_uses_psycopg():
    assert sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"
