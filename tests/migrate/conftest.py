"""Fixtures for migration tests: a fresh PostgreSQL database and a small SQLite file.

The PostgreSQL fixture needs the server at 127.0.0.1:5432 with trust authentication
for the user ``postgres``. When the server is unreachable the test fails rather than
skips, because a migration check that could not run must never look like a pass.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
ADMIN_URL = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """Create an empty database ``daw_test_<random>`` and yield its URL.

    The database is dropped ``WITH (FORCE)`` after the test, which also ends any
    session the test left open on it.
    """
    name = f"daw_test_{secrets.token_hex(6)}"
    with _admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_connection() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Create a SQLite file with three rows in table ``customers``; return its path."""
    path = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            conn.executemany(
                "INSERT INTO customers (name) VALUES (?)",
                [("Ada",), ("Grace",), ("Edsger",)],
            )
    finally:
        conn.close()
    return path
