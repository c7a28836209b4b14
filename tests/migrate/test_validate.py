"""Tests of the fork checks, the schema dump and the checksums."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import psycopg
import pytest

from daw.migrate.dburl import parse_url
from daw.migrate.validate import (
    SchemaFileError,
    ValidationRequest,
    compare_schema,
    count_rows,
    database_checksum,
    load_schema_file,
    render_schema,
    schema_dump,
    validate_fork,
)


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL,"
            " plan text DEFAULT 'free')"
        )
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, customer_id int)")
        conn.execute(
            "INSERT INTO customers (email) SELECT 'u' || (g % 50) FROM"
            " generate_series(1, 10000) g"
        )


def _by_name(results, name: str):
    return next(result for result in results if result.name == name)


def _request(url, **kwargs) -> ValidationRequest:
    return ValidationRequest(rows_before=count_rows(url), **kwargs)


def test_clean_database_passes(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    results = validate_fork(url, _request(url))
    assert [r.status for r in results] == ["pass", "pass", "pass"]


def test_not_valid_constraint_fails(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY"
            " (customer_id) REFERENCES customers (id) NOT VALID"
        )
    check = _by_name(validate_fork(url, _request(url)), "constraints_validated")
    assert check.status == "fail"
    assert check.details == ["public.orders: orders_customer_fk"]


def test_invalid_index_fails(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    with (
        psycopg.connect(pg_url, autocommit=True) as conn,
        pytest.raises(psycopg.errors.UniqueViolation),
    ):
        conn.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY customers_email ON customers (email)"
        )
    check = _by_name(validate_fork(url, _request(url)), "indexes_valid")
    assert check.status == "fail"
    assert check.details == ["public.customers_email"]


def test_undeclared_row_change_fails(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    request = _request(url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM customers WHERE id <= 10")
    check = _by_name(validate_fork(url, request), "row_counts")
    assert check.status == "fail"
    assert check.details == ["public.customers: 10000 rows before, 9990 after"]


def test_declared_row_change_passes(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    request = _request(url, declared_row_changes={"customers"})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM customers WHERE id <= 10")
    assert _by_name(validate_fork(url, request), "row_counts").status == "pass"


def test_dropped_table_fails_row_counts(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    request = _request(url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE orders")
    check = _by_name(validate_fork(url, request), "row_counts")
    assert check.details == ["public.orders: 0 rows before, table gone after"]


def test_schema_dump_describes_columns(pg_url: str) -> None:
    _seed(pg_url)
    dump = schema_dump(parse_url(pg_url))
    columns = dump["tables"]["public.customers"]["columns"]
    assert columns[1] == {
        "name": "email",
        "type": "text",
        "nullable": False,
        "default": None,
    }
    assert columns[2]["default"] == "'free'::text"
    assert "customers_pkey" in dump["tables"]["public.customers"]["indexes"]
    assert dump["tables"]["public.customers"]["constraints"]["customers_pkey"][
        "type"
    ] == ("primary key")


def test_schema_dump_is_deterministic(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    assert render_schema(schema_dump(url)) == render_schema(schema_dump(url))


def test_schema_mismatch_fails(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    expected = schema_dump(url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE customers ADD COLUMN nickname text")
    check = _by_name(
        validate_fork(url, _request(url, expected_schema=expected)), "schema"
    )
    assert check.status == "fail"
    assert check.details == ["unexpected column public.customers.nickname"]


def test_compare_reports_type_change() -> None:
    expected = {"tables": {"t": {"columns": [{"name": "a", "type": "int"}]}}}
    actual = {"tables": {"t": {"columns": [{"name": "a", "type": "bigint"}]}}}
    differences = compare_schema(expected, actual)
    assert len(differences) == 1
    assert differences[0].startswith("column t.a: expected")


def test_test_command_sees_fork_url(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    script = tmp_path / "check.py"
    script.write_text(
        "import os, sys\n"
        "database = os.environ['DATABASE_URL']\n"
        f"sys.exit(0 if database.endswith('/{url.database}') else 3)\n"
    )
    request = _request(url, test_command=[sys.executable, str(script)], cwd=tmp_path)
    assert _by_name(validate_fork(url, request), "test_command").status == "pass"


def test_failing_test_command_fails(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    command = f"{sys.executable} -c \"print('broken fixture'); raise SystemExit(4)\""
    request = _request(url, test_command=command, cwd=tmp_path)
    check = _by_name(validate_fork(url, request), "test_command")
    assert check.status == "fail"
    assert "exited with 4" in check.message
    assert "broken fixture" in check.details


def test_missing_test_command_errors(pg_url: str, tmp_path: Path) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    request = _request(url, test_command=["daw-no-such-tool"], cwd=tmp_path)
    assert _by_name(validate_fork(url, request), "test_command").status == "error"


def test_unreachable_fork_is_error() -> None:
    url = parse_url("postgresql://postgres@127.0.0.1:5432/daw_test_absent")
    results = validate_fork(url, ValidationRequest(rows_before={}))
    assert {result.status for result in results} == {"error"}


def test_sqlite_checks_pass(sqlite_path: Path) -> None:
    url = parse_url(str(sqlite_path))
    statuses = [r.status for r in validate_fork(url, _request(url))]
    assert statuses == ["pass", "pass", "pass"]


def test_sqlite_foreign_key_violation(sqlite_path: Path) -> None:
    conn = sqlite3.connect(sqlite_path)
    conn.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY,"
        " customer_id INTEGER REFERENCES customers (id))"
    )
    conn.execute("INSERT INTO orders (customer_id) VALUES (99)")
    conn.commit()
    conn.close()
    url = parse_url(str(sqlite_path))
    check = _by_name(validate_fork(url, _request(url)), "foreign_key_check")
    assert check.status == "fail"


def test_sqlite_schema_dump(sqlite_path: Path) -> None:
    dump = schema_dump(parse_url(str(sqlite_path)))
    columns = dump["tables"]["customers"]["columns"]
    assert [c["name"] for c in columns] == ["id", "name"]
    assert columns[1]["nullable"] is False


def test_checksum_detects_change(pg_url: str) -> None:
    _seed(pg_url)
    url = parse_url(pg_url)
    first = database_checksum(url)
    assert database_checksum(url) == first
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE customers SET plan = 'pro' WHERE id = 1")
    changed = database_checksum(url)
    assert changed["data"] != first["data"]
    assert changed["schema"] == first["schema"]


def test_sqlite_checksum_detects_change(sqlite_path: Path) -> None:
    url = parse_url(str(sqlite_path))
    first = database_checksum(url)
    conn = sqlite3.connect(sqlite_path)
    conn.execute("UPDATE customers SET name = 'Ada L.' WHERE id = 1")
    conn.commit()
    conn.close()
    assert database_checksum(url)["data"] != first["data"]


def test_schema_file_json(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"tables": {}}))
    assert load_schema_file(path) == {"tables": {}}


def test_schema_file_yaml(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text("tables:\n  t:\n    columns: []\n")
    assert load_schema_file(path)["tables"] == {"t": {"columns": []}}


def test_schema_file_invalid(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text("[1, 2]")
    with pytest.raises(SchemaFileError, match="a 'tables' mapping"):
        load_schema_file(path)


def test_schema_file_missing(tmp_path: Path) -> None:
    with pytest.raises(SchemaFileError, match="cannot read the expected schema"):
        load_schema_file(tmp_path / "absent.json")
