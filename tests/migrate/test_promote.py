"""Tests of promotion: timeouts, recorded versions, and production left as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from daw.errors import UsageError
from daw.migrate.dburl import parse_url
from daw.migrate.promote import Limits, promote
from daw.migrate.sources import SqlFolderSource
from daw.migrate.validate import database_checksum


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL)"
        )
        conn.execute(
            "INSERT INTO accounts (email)"
            " SELECT 'u' || g FROM generate_series(1, 10000) g"
        )


def _source(tmp_path: Path, files: dict[str, str]) -> SqlFolderSource:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return SqlFolderSource(folder)


def test_promote_applies_and_records(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    source = _source(
        tmp_path, {"0001_note.sql": "ALTER TABLE accounts ADD COLUMN note text;"}
    )
    url = parse_url(pg_url)
    result = promote(url, source, source.migrations())
    assert result.ok, result.error
    assert result.applied == ["1"]
    with psycopg.connect(pg_url) as conn:
        assert list(source.applied(conn)) == ["1"]


def test_failed_statement_leaves_production(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    source = _source(
        tmp_path,
        {
            "0001_bad.sql": "ALTER TABLE accounts ADD COLUMN note text;\n"
            "UPDATE accounts SET email = NULL WHERE id = 1;\n"
        },
    )
    url = parse_url(pg_url)
    before = database_checksum(url)
    result = promote(url, source, source.migrations())
    assert result.ok is False
    assert "0001_bad.sql:2" in result.error
    assert result.partial is False
    assert database_checksum(url) == before


def test_lock_timeout_leaves_production(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    source = _source(
        tmp_path, {"0001_note.sql": "ALTER TABLE accounts ADD COLUMN note text;"}
    )
    url = parse_url(pg_url)
    with psycopg.connect(pg_url) as reader:
        reader.execute("SELECT count(*) FROM accounts").fetchone()
        before = database_checksum(url)
        result = promote(url, source, source.migrations(), limits=Limits(0.3, 60))
        reader.rollback()
    assert result.ok is False
    assert "lock timeout" in result.error
    assert database_checksum(url) == before


def test_statement_timeout_applies(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    source = _source(tmp_path, {"0001_slow.sql": "SELECT pg_sleep(5);"})
    result = promote(
        parse_url(pg_url), source, source.migrations(), limits=Limits(5, 0.3)
    )
    assert result.ok is False
    assert "statement timeout" in result.error


def test_second_failure_reports_partial(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    source = _source(
        tmp_path,
        {
            "0001_note.sql": "ALTER TABLE accounts ADD COLUMN note text;",
            "0002_bad.sql": "ALTER TABLE missing_table ADD COLUMN x int;",
        },
    )
    result = promote(parse_url(pg_url), source, source.migrations())
    assert result.applied == ["1"]
    assert result.partial is True
    assert result.failed_migration == "0002_bad.sql"


def test_promote_sqlite(sqlite_path: Path, tmp_path: Path) -> None:
    source = _source(
        tmp_path, {"0001_note.sql": "ALTER TABLE customers ADD COLUMN note TEXT;"}
    )
    result = promote(parse_url(str(sqlite_path)), source, source.migrations())
    assert result.ok, result.error
    conn = sqlite3.connect(sqlite_path)
    names = [row[1] for row in conn.execute("PRAGMA table_info(customers)")]
    conn.close()
    assert "note" in names


def test_rejected_setting_returned(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    source = _source(
        tmp_path, {"0001_note.sql": "ALTER TABLE accounts ADD COLUMN note text;"}
    )
    url = parse_url(pg_url)
    before = database_checksum(url)
    result = promote(url, source, source.migrations(), limits=Limits(-5.0, 900.0))
    assert result.ok is False
    assert "database error" in (result.error or "")
    assert "lock_timeout" in (result.error or "")
    assert result.partial is False
    assert result.applied == []
    assert database_checksum(url) == before


def test_limits_check_rejects_bad_values() -> None:
    for limits in (Limits(-5.0, 900.0), Limits(5.0, float("nan")), Limits(1e10, 1)):
        with pytest.raises(UsageError):
            limits.check()
