"""Tests of database URL parsing, redaction and fork URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from daw.migrate.dburl import DatabaseUrlError, connect_postgresql, parse_url, redacted

URL = "postgresql://app:s3cretpw@db.example.invalid:6543/shop?sslmode=require"


def test_parse_postgresql_fields() -> None:
    url = parse_url(URL)
    assert url.kind == "postgresql"
    assert url.host == "db.example.invalid"
    assert url.port == 6543
    assert url.user == "app"
    assert url.password == "s3cretpw"
    assert url.database == "shop"
    assert url.options == (("sslmode", "require"),)


def test_redacted_hides_password() -> None:
    assert parse_url(URL).redacted() == (
        "postgresql://app:***@db.example.invalid:6543/shop?sslmode=require"
    )


def test_redacted_text_url() -> None:
    assert redacted(URL) == (
        "postgresql://app:***@db.example.invalid:6543/shop?sslmode=require"
    )


def test_render_round_trips() -> None:
    assert parse_url(parse_url(URL).render()) == parse_url(URL)


def test_postgres_scheme_alias() -> None:
    assert parse_url("postgres://u@h/d").kind == "postgresql"


def test_default_port_and_host() -> None:
    url = parse_url("postgresql:///shop")
    assert url.port == 5432
    assert url.host == "localhost"


def test_fork_url_changes_database_only() -> None:
    fork = parse_url(URL).with_database("daw_fork_x")
    assert fork.database == "daw_fork_x"
    assert fork.password == "s3cretpw"
    assert fork.host == "db.example.invalid"


def test_fork_url_on_other_server() -> None:
    fork = parse_url(URL).with_server("127.0.0.1", 40001)
    assert fork.render().startswith("postgresql://app:s3cretpw@127.0.0.1:40001/shop")


def test_conninfo_has_no_password() -> None:
    conninfo = parse_url(URL).libpq_conninfo()
    assert "s3cretpw" not in conninfo
    assert "dbname='shop'" in conninfo


def test_libpq_env_carries_password() -> None:
    assert parse_url(URL).libpq_env() == {"PGPASSWORD": "s3cretpw"}


def test_sqlite_url_absolute(tmp_path: Path) -> None:
    url = parse_url(f"sqlite:///{tmp_path}/app.db")
    assert url.sqlite_path == tmp_path / "app.db"


@pytest.mark.parametrize("name", ["app.db", "app.sqlite", "app.sqlite3"])
def test_bare_sqlite_path(tmp_path: Path, name: str) -> None:
    url = parse_url(str(tmp_path / name))
    assert url.kind == "sqlite"
    assert url.sqlite_path == tmp_path / name


def test_unknown_scheme_rejected() -> None:
    with pytest.raises(DatabaseUrlError, match="unsupported database URL"):
        parse_url("mysql://u:pw@h/d")


def test_unknown_scheme_message_redacted() -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        parse_url("mysql://u:s3cretpw@h/d")
    assert "s3cretpw" not in caught.value.message


def test_missing_database_rejected() -> None:
    with pytest.raises(DatabaseUrlError, match="names no database"):
        parse_url("postgresql://u@h:5432/")


def test_invalid_port_rejected() -> None:
    with pytest.raises(DatabaseUrlError, match="invalid host or port"):
        parse_url("postgresql://u@h:notaport/d")


def test_connect_failure_redacted() -> None:
    url = parse_url("postgresql://postgres:s3cretpw@127.0.0.1:5432/daw_test_missing_db")
    with pytest.raises(DatabaseUrlError) as caught:
        connect_postgresql(url)
    assert "s3cretpw" not in caught.value.message
    assert "daw_test_missing_db" in caught.value.message


LIBPQ_DSN = "host=127.0.0.1 dbname=x user=postgres password=hunter2pw"


def test_redacted_libpq_password() -> None:
    shown = redacted(LIBPQ_DSN)
    assert "hunter2pw" not in shown
    assert "password=***" in shown


def test_redacted_quoted_libpq_password() -> None:
    shown = redacted("host=h password='hunter 2\\' pw' dbname=x")
    assert "hunter" not in shown
    assert shown == "host=h password=*** dbname=x"


def test_libpq_dsn_rejected_without_password() -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        parse_url(LIBPQ_DSN)
    assert "hunter2pw" not in caught.value.message
    assert "unsupported database URL" in caught.value.message
    assert "keyword/value" in (caught.value.hint or "")


def test_unparsable_host_hides_password() -> None:
    with pytest.raises(DatabaseUrlError) as caught:
        parse_url("postgresql://app:hunter2pw@[::1/shop")
    assert "hunter2pw" not in caught.value.message
    assert "invalid host or port" in caught.value.message


def test_query_password_moved_out() -> None:
    url = parse_url("postgresql://app@h/shop?password=hunter2pw&sslmode=require")
    assert url.password == "hunter2pw"
    assert url.options == (("sslmode", "require"),)
    assert "hunter2pw" not in url.redacted()
    assert "hunter2pw" not in url.libpq_conninfo()


def test_query_password_without_user() -> None:
    url = parse_url("postgresql://h/shop?password=hunter2pw")
    assert url.redacted() == "postgresql://h:5432/shop?password=***"
    assert url.render() == "postgresql://h:5432/shop?password=hunter2pw"
