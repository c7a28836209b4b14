"""Tests of the whole workflow on real PostgreSQL and SQLite databases."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import psycopg
import pytest

from daw.errors import UsageError
from daw.migrate import forks
from daw.migrate.dburl import parse_url
from daw.migrate.forks import ForkError, ForkState
from daw.migrate.forks.base import fork_name
from daw.migrate.promote import Limits
from daw.migrate.validate import database_checksum, schema_dump
from daw.migrate.workflow import MigrateRequest, plan, run


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL,"
            " balance int NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "INSERT INTO accounts (email) SELECT 'u' || (g % 100) || '@example.invalid'"
            " FROM generate_series(1, 10000) g"
        )


def _request(
    url: str, tmp_path: Path, files: dict[str, str], **kwargs
) -> MigrateRequest:
    folder = tmp_path / "migrations"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return MigrateRequest(
        database=url,
        migrations=folder,
        repo=tmp_path,
        state_dir=tmp_path / "state" / "forks",
        **kwargs,
    )


def _fork_databases(url: str) -> list[str]:
    """Return the fork databases whose label names ``url``'s database as source.

    Other DAW runs may fork other databases on the same server at the same time,
    so forks of other sources are ignored.
    """
    own = parse_url(url).database
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname LIKE 'daw\\_fork\\_%'"
        ).fetchall()
    names = []
    for name, comment in rows:
        source = json.loads(comment).get("source", "") if comment else ""
        if source and parse_url(source).database == own:
            names.append(name)
    return sorted(names)


GOOD = {"0001_note.sql": "ALTER TABLE accounts ADD COLUMN note text;\n"}


def test_run_promotes_passing_migration(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    result = run(_request(pg_url, tmp_path, GOOD))
    assert result.status == "promoted", result.message
    assert result.exit_code == 0
    assert result.production_changed is True
    columns = [
        c["name"]
        for c in schema_dump(parse_url(pg_url))["tables"]["public.accounts"]["columns"]
    ]
    assert "note" in columns
    assert [step["step"] for step in result.steps] == [
        "plan",
        "fork",
        "apply to fork",
        "validate",
        "promote",
        "discard",
    ]
    assert _fork_databases(pg_url) == []
    assert ForkState(tmp_path / "state" / "forks").load_all() == []
    assert Path(result.report_path).is_file()


def test_run_nothing_pending(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    run(_request(pg_url, tmp_path, GOOD))
    again = run(_request(pg_url, tmp_path, {}))
    assert again.status == "nothing-to-do"
    assert again.exit_code == 0


def test_failure_on_fork_keeps_production(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    before = database_checksum(parse_url(pg_url))
    files = {
        "0001_bad.sql": "ALTER TABLE accounts ADD COLUMN note text;\n"
        "ALTER TABLE accounts ALTER COLUMN email TYPE int USING email::int;\n"
    }
    result = run(_request(pg_url, tmp_path, files))
    assert result.status == "failed-on-fork"
    assert result.exit_code == 1
    assert "0001_bad.sql:2" in result.message
    assert database_checksum(parse_url(pg_url)) == before
    assert _fork_databases(pg_url) == []


def test_invalid_index_fails_on_fork(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    before = database_checksum(parse_url(pg_url))
    files = {
        "0001_unique.sql": "CREATE UNIQUE INDEX CONCURRENTLY accounts_email"
        " ON accounts (email);\n"
    }
    result = run(_request(pg_url, tmp_path, files))
    assert result.status == "failed-on-fork"
    assert database_checksum(parse_url(pg_url)) == before


def test_not_valid_constraint_fails_validation(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    before = database_checksum(parse_url(pg_url))
    files = {
        "0001_check.sql": "ALTER TABLE accounts ADD CONSTRAINT balance_positive"
        " CHECK (balance >= 0) NOT VALID;\n"
    }
    result = run(_request(pg_url, tmp_path, files))
    assert result.status == "validation-failed"
    failed = [check.name for check in result.checks if not check.passed]
    assert failed == ["constraints_validated"]
    assert database_checksum(parse_url(pg_url)) == before


def test_failing_test_command_blocks(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    before = database_checksum(parse_url(pg_url))
    command = [sys.executable, "-c", "raise SystemExit('fixture data is missing')"]
    result = run(_request(pg_url, tmp_path, GOOD, test_command=command))
    assert result.status == "validation-failed"
    check = next(c for c in result.checks if c.name == "test_command")
    assert "fixture data is missing" in check.details
    assert database_checksum(parse_url(pg_url)) == before


def test_destructive_blocked_without_approval(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    before = database_checksum(parse_url(pg_url))
    files = {"0001_drop.sql": "ALTER TABLE accounts DROP COLUMN balance;\n"}
    result = run(_request(pg_url, tmp_path, files))
    assert result.status == "blocked"
    assert result.exit_code == 1
    assert database_checksum(parse_url(pg_url)) == before
    assert _fork_databases(pg_url) == []


def test_destructive_promoted_with_approval(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    files = {"0001_drop.sql": "ALTER TABLE accounts DROP COLUMN balance;\n"}
    first = plan(_request(pg_url, tmp_path, files))
    destructive = [
        f.fingerprint for f in first.findings if f.category == "migration_destructive"
    ]
    assert first.blocked is True
    result = run(_request(pg_url, tmp_path, files, approvals=tuple(destructive)))
    assert result.status == "promoted", result.message
    assert result.summary()["plan"]["approvals"] == destructive


def test_plan_changes_nothing(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    before = database_checksum(parse_url(pg_url))
    result = plan(_request(pg_url, tmp_path, GOOD))
    assert result.strategy == "template"
    assert [m.path for m in result.pending] == ["0001_note.sql"]
    assert database_checksum(parse_url(pg_url)) == before


def test_open_session_no_strategy(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    with (
        psycopg.connect(pg_url),
        pytest.raises(ForkError, match="TEMPLATE needs none") as caught,
    ):
        run(_request(pg_url, tmp_path, GOOD, strategy="template"))
    assert "no fork strategy" in caught.value.message


def test_expected_schema_mismatch(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    expected = tmp_path / "schema.json"
    expected.write_text('{"tables": {}}')
    result = run(_request(pg_url, tmp_path, GOOD, expected_schema=expected))
    assert result.status == "validation-failed"
    check = next(c for c in result.checks if c.name == "schema")
    assert "unexpected table public.accounts" in check.details


def test_lock_impact_reported(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    files = {
        "0001_slow.sql": "ALTER TABLE accounts ADD COLUMN note text;\n"
        "SELECT pg_sleep(0.3);\n"
    }
    result = run(_request(pg_url, tmp_path, files))
    locks = result.impact["tables"]["public.accounts"]["locks"]
    assert "AccessExclusiveLock" in [lock["mode"] for lock in locks]


def test_sqlite_run_promotes(sqlite_path: Path, tmp_path: Path) -> None:
    files = {"0001_note.sql": "ALTER TABLE customers ADD COLUMN note TEXT;\n"}
    result = run(_request(str(sqlite_path), tmp_path, files))
    assert result.status == "promoted", result.message
    assert result.fork["strategy"] == "sqlite-backup"
    conn = sqlite3.connect(sqlite_path)
    names = [row[1] for row in conn.execute("PRAGMA table_info(customers)")]
    conn.close()
    assert "note" in names
    assert not list(sqlite_path.parent.glob("daw_fork_*"))


def test_sqlite_failure_keeps_file(sqlite_path: Path, tmp_path: Path) -> None:
    before = database_checksum(parse_url(str(sqlite_path)))
    files = {
        "0001_bad.sql": "ALTER TABLE customers ADD COLUMN note TEXT;\n"
        "INSERT INTO missing VALUES (1);\n"
    }
    result = run(_request(str(sqlite_path), tmp_path, files))
    assert result.status == "failed-on-fork"
    assert database_checksum(parse_url(str(sqlite_path))) == before


def test_run_id_matches_check(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    result = run(_request(pg_url, tmp_path, GOOD))
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", result.run_id)
    assert result.fork["name"] == fork_name(result.run_id)
    assert result.fork["name"] == "daw_fork_" + result.run_id.lower().replace("-", "_")


def test_fork_listing_sees_own_fork(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    source = parse_url(pg_url)
    state = ForkState(tmp_path / "forks")
    fork = forks.get_strategy("template").create(source, "daw-test-own", state)
    try:
        assert _fork_databases(pg_url) == [fork.name]
    finally:
        forks.discard_fork(fork, state)
    assert _fork_databases(pg_url) == []


def test_invalid_limits_rejected_first(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    before = database_checksum(parse_url(pg_url))
    request = _request(pg_url, tmp_path, GOOD, limits=Limits(-5.0, 900.0))
    with pytest.raises(UsageError, match="invalid --lock-timeout -5.0"):
        run(request)
    assert not (tmp_path / "state").exists()
    assert database_checksum(parse_url(pg_url)) == before


def test_negative_large_table_rejected(pg_url: str, tmp_path: Path) -> None:
    request = _request(pg_url, tmp_path, GOOD, large_table_bytes=-1)
    with pytest.raises(UsageError, match="invalid large-table size"):
        plan(request)


def test_promotion_connect_failure(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    name = parse_url(pg_url).database
    admin = parse_url(pg_url).with_database("postgres").render()
    before = database_checksum(parse_url(pg_url))
    # The test command closes production to new sessions after the fork was
    # validated, so only the promotion's connect fails.
    close = f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    command = [
        sys.executable,
        "-c",
        f"import psycopg; psycopg.connect({admin!r}, autocommit=True)"
        f".execute({close!r})",
    ]
    try:
        result = run(_request(pg_url, tmp_path, GOOD, test_command=command))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
    assert result.status == "promotion-failed", result.message
    assert result.exit_code == 1
    assert result.production_changed is False
    assert "cannot connect" in result.message
    assert Path(result.report_path).is_file()
    assert database_checksum(parse_url(pg_url)) == before
    assert _fork_databases(pg_url) == []


def test_validation_failure_names_gate(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    files = {"0001_drop.sql": "ALTER TABLE accounts DROP COLUMN balance;\n"}
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    result = run(_request(pg_url, tmp_path, files, test_command=command))
    assert result.status == "validation-failed"
    assert "gate would also block production" in result.message
    assert "migration.destructive" in result.message
