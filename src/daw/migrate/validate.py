"""Validation of a fork after the migration ran on it, and database checksums.

Every check returns ``pass``, ``fail`` or ``error``. An ``error`` is a check that
could not run, and it counts as a failure, so a fork is promoted only when every
check passed. The schema dump used by the expected-schema check and by the checksums
is deterministic: tables, columns (in column order) with type, nullability and
default, indexes and constraints, all sorted by name.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from daw.migrate.dburl import DatabaseUrl, connect, connect_postgresql
from daw.migrate.errors import MigrationError
from daw.process import ToolError, run_tool
from daw.redact import redact

log = logging.getLogger(__name__)

BOOKKEEPING_TABLE = "daw_schema_migrations"
TEST_TIMEOUT_S = 1800.0
OUTPUT_TAIL_CHARS = 2000


class SchemaFileError(MigrationError):
    """An expected-schema file is missing or not a schema dump."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one validation check: ``pass``, ``fail`` or ``error``."""

    name: str
    status: str
    message: str
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "details": self.details,
        }


@dataclass(frozen=True)
class ValidationRequest:
    """The inputs of the fork checks beyond the built-in ones.

    ``rows_before`` are exact row counts of the tables that existed before the
    migration, taken on the fork. ``declared_row_changes`` names the tables whose
    row count the migration may change. ``test_command`` runs with
    ``DATABASE_URL`` set to the fork's URL, in ``cwd``.
    """

    rows_before: dict[str, int]
    declared_row_changes: Collection[str] = ()
    expected_schema: dict[str, Any] | None = None
    test_command: Sequence[str] | str | None = None
    test_timeout_s: float = TEST_TIMEOUT_S
    cwd: Path = Path(".")


def validate_fork(
    fork_url: DatabaseUrl, request: ValidationRequest
) -> list[CheckResult]:
    """Run every check on the fork and return the results in a fixed order."""
    if fork_url.kind == "sqlite":
        checks = [_sqlite_integrity, _sqlite_foreign_keys]
    else:
        checks = [_constraints_validated, _indexes_valid]
    results = [_guarded(check.__name__, check, fork_url) for check in checks]
    results.append(_guarded("row_counts", _row_counts, fork_url, request))
    if request.expected_schema is not None:
        results.append(_guarded("schema", _schema_matches, fork_url, request))
    if request.test_command:
        results.append(_test_command(fork_url, request))
    return results


def _guarded(name: str, check, *args) -> CheckResult:
    try:
        return check(*args)
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is an error
        log.error("validation check %s could not run: %s", name, exc)
        return CheckResult(
            name.lstrip("_"), "error", f"the check could not run: {redact(str(exc))}"
        )


def _constraints_validated(url: DatabaseUrl) -> CheckResult:
    with connect_postgresql(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname, con.conname FROM pg_constraint con"
            " JOIN pg_class c ON c.oid = con.conrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE NOT con.convalidated ORDER BY 1, 2"
        ).fetchall()
    if not rows:
        return CheckResult(
            "constraints_validated", "pass", "every constraint is validated"
        )
    details = [f"{table}: {name}" for table, name in rows]
    return CheckResult(
        "constraints_validated",
        "fail",
        f"{len(rows)} constraints are NOT VALID; run ALTER TABLE ... VALIDATE "
        "CONSTRAINT in the migration",
        details,
    )


def _indexes_valid(url: DatabaseUrl) -> CheckResult:
    with connect_postgresql(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE NOT i.indisvalid ORDER BY 1"
        ).fetchall()
    if not rows:
        return CheckResult("indexes_valid", "pass", "every index is valid")
    return CheckResult(
        "indexes_valid",
        "fail",
        f"{len(rows)} indexes are invalid (a failed CREATE INDEX CONCURRENTLY "
        "leaves one behind, for example on duplicate data for a UNIQUE index)",
        [row[0] for row in rows],
    )


def _sqlite_integrity(url: DatabaseUrl) -> CheckResult:
    conn = connect(url)
    try:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    if rows == ["ok"]:
        return CheckResult("integrity_check", "pass", "PRAGMA integrity_check is ok")
    return CheckResult("integrity_check", "fail", "PRAGMA integrity_check failed", rows)


def _sqlite_foreign_keys(url: DatabaseUrl) -> CheckResult:
    conn = connect(url)
    try:
        rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    if not rows:
        return CheckResult("foreign_key_check", "pass", "no foreign key violations")
    details = [f"{table} rowid {rowid} -> {parent}" for table, rowid, parent, _ in rows]
    return CheckResult(
        "foreign_key_check", "fail", f"{len(rows)} foreign key violations", details
    )


def count_rows(url: DatabaseUrl) -> dict[str, int]:
    """Return the exact row count of every user table, by name.

    PostgreSQL names are ``schema.table``; SQLite names are bare. DAW's own
    bookkeeping table is left out.
    """
    if url.kind == "sqlite":
        conn = connect(url)
        try:
            return {
                name: _sqlite_count(conn, name)
                for name in _sqlite_tables(conn)
                if name != BOOKKEEPING_TABLE
            }
        finally:
            conn.close()
    from psycopg import sql

    with connect_postgresql(url, autocommit=True) as conn:
        counts = {}
        for schema, table in _pg_tables(conn):
            if table == BOOKKEEPING_TABLE:
                continue
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            counts[f"{schema}.{table}"] = int(conn.execute(query).fetchone()[0])
    return counts


def _declared(table: str, declared: Collection[str]) -> bool:
    names = {name.lower() for name in declared}
    bare = table.split(".", 1)[-1].lower()
    return table.lower() in names or bare in names


def _row_counts(url: DatabaseUrl, request: ValidationRequest) -> CheckResult:
    after = count_rows(url)
    changed = []
    for table, before in sorted(request.rows_before.items()):
        if _declared(table, request.declared_row_changes):
            continue
        now = after.get(table)
        if now is None:
            changed.append(f"{table}: {before} rows before, table gone after")
        elif now != before:
            changed.append(f"{table}: {before} rows before, {now} after")
    if not changed:
        return CheckResult(
            "row_counts",
            "pass",
            f"row counts of {len(request.rows_before)} existing tables are unchanged "
            "or declared",
        )
    return CheckResult(
        "row_counts",
        "fail",
        f"{len(changed)} existing tables changed their row count without declaring "
        "it; declare the change in the migration or fix it",
        changed,
    )


def _schema_matches(url: DatabaseUrl, request: ValidationRequest) -> CheckResult:
    assert request.expected_schema is not None
    differences = compare_schema(request.expected_schema, schema_dump(url))
    if not differences:
        return CheckResult(
            "schema", "pass", "the fork's schema matches the expected one"
        )
    return CheckResult(
        "schema",
        "fail",
        f"the fork's schema differs from the expected one in {len(differences)} places",
        differences,
    )


def _test_command(url: DatabaseUrl, request: ValidationRequest) -> CheckResult:
    command = request.test_command
    args = shlex.split(command) if isinstance(command, str) else list(command or [])
    shown = shlex.join(args)
    try:
        completed = run_tool(
            args,
            cwd=request.cwd,
            timeout_s=request.test_timeout_s,
            env={"DATABASE_URL": url.render()},
        )
    except ToolError as exc:
        return CheckResult("test_command", "error", f"`{shown}` could not run: {exc}")
    output = (completed.stdout + completed.stderr).strip()
    tail = redact(output[-OUTPUT_TAIL_CHARS:]).replace(url.render(), url.redacted())
    if completed.returncode == 0:
        return CheckResult(
            "test_command", "pass", f"`{shown}` passed in {completed.duration_s:.1f} s"
        )
    return CheckResult(
        "test_command",
        "fail",
        f"`{shown}` exited with {completed.returncode}",
        tail.splitlines()[-40:],
    )


def _pg_tables(conn) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p')"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE %s AND n.nspname NOT LIKE %s"
        " ORDER BY 1, 2",
        ("pg\\_toast%", "pg\\_temp%"),
    ).fetchall()


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    )
    return [row[0] for row in rows]


def _sqlite_count(conn: sqlite3.Connection, table: str) -> int:
    return int(
        conn.execute(f"SELECT count(*) FROM {_sqlite_quote(table)}").fetchone()[0]
    )  # noqa: S608


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_dump(
    url: DatabaseUrl, *, include_bookkeeping: bool = False
) -> dict[str, Any]:
    """Return the deterministic schema dump of the database at ``url``.

    DAW's bookkeeping table is left out unless ``include_bookkeeping``, so an
    expected-schema file describes the application's tables only.
    """
    tables = _sqlite_schema(url) if url.kind == "sqlite" else _pg_schema(url)
    if not include_bookkeeping:
        tables = {
            name: table
            for name, table in tables.items()
            if name.split(".")[-1] != BOOKKEEPING_TABLE
        }
    return {"dialect": url.kind, "tables": dict(sorted(tables.items()))}


_PG_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d
  ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PG_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %s::regclass ORDER BY 1
"""
_PG_CONSTRAINTS = """
SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = %s::regclass ORDER BY 1
"""


def _pg_schema(url: DatabaseUrl) -> dict[str, Any]:
    from psycopg import sql

    tables = {}
    with connect_postgresql(url, autocommit=True) as conn:
        for schema, table in _pg_tables(conn):
            qualified = sql.Identifier(schema, table).as_string(conn)
            tables[f"{schema}.{table}"] = _pg_table(conn, qualified)
    return tables


def _pg_table(conn, qualified: str) -> dict[str, Any]:
    columns = [
        {"name": name, "type": kind, "nullable": bool(nullable), "default": default}
        for name, kind, nullable, default in conn.execute(_PG_COLUMNS, (qualified,))
    ]
    indexes = dict(conn.execute(_PG_INDEXES, (qualified,)).fetchall())
    constraints = {
        name: {"type": _CONSTRAINT_TYPES.get(kind, kind), "definition": definition}
        for name, kind, definition in conn.execute(_PG_CONSTRAINTS, (qualified,))
    }
    return {"columns": columns, "indexes": indexes, "constraints": constraints}


_CONSTRAINT_TYPES = {
    "p": "primary key",
    "f": "foreign key",
    "u": "unique",
    "c": "check",
    "x": "exclusion",
    "t": "trigger",
}


def _sqlite_schema(url: DatabaseUrl) -> dict[str, Any]:
    conn = connect(url)
    try:
        return {name: _sqlite_table(conn, name) for name in _sqlite_tables(conn)}
    finally:
        conn.close()


def _sqlite_table(conn: sqlite3.Connection, table: str) -> dict[str, Any]:
    quoted = _sqlite_quote(table)
    info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
    columns = [
        {
            "name": name,
            "type": kind,
            "nullable": not notnull and not pk,
            "default": default,
        }
        for _cid, name, kind, notnull, default, pk in info
    ]
    indexes = {}
    for row in conn.execute(f"PRAGMA index_list({quoted})").fetchall():
        name, unique = row[1], row[2]
        cols = [r[2] for r in conn.execute(f"PRAGMA index_info({_sqlite_quote(name)})")]
        indexes[name] = (
            f"{'UNIQUE ' if unique else ''}INDEX ON {table} "
            f"({', '.join(map(str, cols))})"
        )
    constraints = {}
    keys = [
        name for _cid, name, _k, _n, _d, pk in sorted(info, key=lambda r: r[5]) if pk
    ]
    if keys:
        constraints["primary key"] = {
            "type": "primary key",
            "definition": f"PRIMARY KEY ({', '.join(keys)})",
        }
    for row in conn.execute(f"PRAGMA foreign_key_list({quoted})").fetchall():
        ident, _seq, parent, source, target = row[0], row[1], row[2], row[3], row[4]
        constraints[f"foreign key {ident}.{_seq}"] = {
            "type": "foreign key",
            "definition": f"FOREIGN KEY ({source}) REFERENCES {parent}({target})",
        }
    return {
        "columns": columns,
        "indexes": dict(sorted(indexes.items())),
        "constraints": constraints,
    }


def compare_schema(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Return the differences between two schema dumps as sorted sentences."""
    want = _flatten(expected.get("tables", {}))
    have = _flatten(actual.get("tables", {}))
    differences = []
    for key in sorted(set(want) | set(have)):
        if key not in have:
            differences.append(f"missing {key}")
        elif key not in want:
            differences.append(f"unexpected {key}")
        elif want[key] != have[key]:
            differences.append(f"{key}: expected {want[key]!r}, found {have[key]!r}")
    return differences


def _flatten(tables: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for table, body in tables.items():
        flat[f"table {table}"] = "present"
        for column in body.get("columns", []):
            key = f"column {table}.{column.get('name')}"
            flat[key] = {k: column.get(k) for k in ("type", "nullable", "default")}
        for name, definition in body.get("indexes", {}).items():
            flat[f"index {table}.{name}"] = definition
        for name, definition in body.get("constraints", {}).items():
            flat[f"constraint {table}.{name}"] = definition
    return flat


def load_schema_file(path: Path) -> dict[str, Any]:
    """Read an expected-schema file (JSON, or YAML for ``.yaml``/``.yml``).

    Raises SchemaFileError when it is missing, unreadable or has no ``tables``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaFileError(
            f"cannot read the expected schema {path}: {exc.strerror}",
            hint="write one with `daw migrate schema --database URL --output FILE`",
        ) from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SchemaFileError(f"{path}: invalid schema file: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        raise SchemaFileError(
            f"{path}: a schema file is a mapping with a 'tables' mapping",
            hint="write one with `daw migrate schema --database URL --output FILE`",
        )
    return data


def render_schema(dump: dict[str, Any]) -> str:
    """Return a schema dump as stable, indented JSON text."""
    return json.dumps(dump, indent=2, sort_keys=True) + "\n"


def database_checksum(url: DatabaseUrl) -> dict[str, str]:
    """Return sha256 digests of the schema and of every table's rows.

    The schema digest covers the schema dump with DAW's bookkeeping table. The
    data digest covers every table in name order, rows ordered by all columns
    (PostgreSQL: by the row's text form in the C collation).
    """
    schema = render_schema(schema_dump(url, include_bookkeeping=True))
    data = hashlib.sha256()
    if url.kind == "sqlite":
        _sqlite_rows_digest(url, data)
    else:
        _pg_rows_digest(url, data)
    return {
        "schema": hashlib.sha256(schema.encode()).hexdigest(),
        "data": data.hexdigest(),
    }


def _pg_rows_digest(url: DatabaseUrl, digest) -> None:
    from psycopg import sql

    with connect_postgresql(url) as conn:
        for schema, table in _pg_tables(conn):
            digest.update(f"\x00table {schema}.{table}\x00".encode())
            query = sql.SQL(
                'SELECT t::text FROM {}.{} t ORDER BY t::text COLLATE "C"'
            ).format(sql.Identifier(schema), sql.Identifier(table))
            with conn.cursor(name="daw_checksum") as cursor:
                cursor.execute(query)
                for (row,) in cursor:
                    digest.update(row.encode() + b"\n")
        conn.rollback()


def _sqlite_rows_digest(url: DatabaseUrl, digest) -> None:
    conn = connect(url)
    try:
        for table in _sqlite_tables(conn):
            digest.update(f"\x00table {table}\x00".encode())
            width = len(
                conn.execute(f"PRAGMA table_info({_sqlite_quote(table)})").fetchall()
            )
            order = ", ".join(str(i) for i in range(1, width + 1))
            for row in conn.execute(
                f"SELECT * FROM {_sqlite_quote(table)} ORDER BY {order}"
            ):  # noqa: S608
                digest.update(repr(row).encode() + b"\n")
    finally:
        conn.close()
