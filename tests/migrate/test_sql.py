"""Statement splitting: semicolons inside quotes, dollar quotes and comments."""

from __future__ import annotations

from daw.migrate.sql import (
    is_transaction_control,
    mask_literals,
    runs_outside_transaction,
    split_statements,
    strip_comments,
)


def texts(sql: str) -> list[str]:
    return [statement.text for statement in split_statements(sql, "m.sql")]


def test_split_simple_statements():
    assert texts("SELECT 1; SELECT 2;") == ["SELECT 1", "SELECT 2"]


def test_split_last_statement_without_semicolon():
    assert texts("SELECT 1;\nSELECT 2\n") == ["SELECT 1", "SELECT 2"]


def test_split_string_with_semicolon():
    assert texts("INSERT INTO t VALUES ('a;b'); SELECT 2") == [
        "INSERT INTO t VALUES ('a;b')",
        "SELECT 2",
    ]


def test_split_doubled_quote_in_string():
    assert texts("SELECT 'it''s; here'; SELECT 2") == [
        "SELECT 'it''s; here'",
        "SELECT 2",
    ]


def test_split_escape_string_backslash_quote():
    assert texts(r"SELECT E'it\'s; here'; SELECT 2") == [
        r"SELECT E'it\'s; here'",
        "SELECT 2",
    ]


def test_split_backslash_in_standard_string():
    assert texts(r"SELECT 'C:\'; SELECT 2") == [r"SELECT 'C:\'", "SELECT 2"]


def test_split_quoted_identifier_with_semicolon():
    assert texts('CREATE TABLE "a;b" (x int); SELECT 2') == [
        'CREATE TABLE "a;b" (x int)',
        "SELECT 2",
    ]


def test_split_dollar_quote_with_semicolons():
    sql = (
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql;\n"
        "SELECT 3"
    )
    assert texts(sql) == [
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; SELECT 2; $$ LANGUAGE sql",
        "SELECT 3",
    ]


def test_split_tagged_dollar_quote_containing_plain_dollars():
    sql = "DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$; SELECT 2"
    assert texts(sql) == ["DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$", "SELECT 2"]


def test_split_positional_parameter_is_not_dollar_quote():
    assert texts("PREPARE p AS SELECT $1; SELECT 2") == [
        "PREPARE p AS SELECT $1",
        "SELECT 2",
    ]


def test_split_dollar_inside_identifier():
    assert texts("SELECT a$b$ FROM t; SELECT 2") == ["SELECT a$b$ FROM t", "SELECT 2"]


def test_split_line_comment_with_semicolon():
    assert texts("SELECT 1 -- not; the end\n; SELECT 2") == [
        "SELECT 1 -- not; the end",
        "SELECT 2",
    ]


def test_split_nested_block_comment():
    sql = "/* outer /* inner; */ still; */ SELECT 1; SELECT 2"
    assert texts(sql) == ["SELECT 1", "SELECT 2"]


def test_split_drops_empty_and_comment_only_statements():
    assert texts(";;\n-- only a comment;\n ; SELECT 1;; /* c */ ;") == ["SELECT 1"]


def test_split_empty_text():
    assert split_statements("", "m.sql") == []


def test_split_line_numbers_skip_leading_comments():
    sql = "-- header\n\nCREATE TABLE a (x int);\n/* note */\n\nDROP TABLE b;\n"
    statements = split_statements(sql, "m.sql")
    assert [s.line for s in statements] == [3, 6]


def test_split_line_of_multiline_statement():
    sql = "SELECT\n1;\n\n  ALTER TABLE t\n  ADD COLUMN c int;"
    assert [s.line for s in split_statements(sql, "m.sql")] == [1, 4]


def test_split_index_and_path():
    statements = split_statements("SELECT 1; SELECT 2", "db/0001_x.sql")
    assert [s.index for s in statements] == [1, 2]
    assert {s.path for s in statements} == {"db/0001_x.sql"}


def test_split_unterminated_string_runs_to_end():
    assert texts("SELECT 'open; SELECT 2") == ["SELECT 'open; SELECT 2"]


def test_mask_literals_blanks_strings_and_comments():
    masked = mask_literals("SELECT 'DROP TABLE x' -- DROP\n, $$DELETE$$")
    assert "DROP" not in masked
    assert "DELETE" not in masked


def test_mask_literals_keeps_offsets():
    sql = "SELECT 'abc'\n/* x\ny */ FROM t"
    masked = mask_literals(sql)
    assert len(masked) == len(sql)
    assert masked.count("\n") == sql.count("\n")


def test_mask_literals_keeps_quoted_identifiers():
    assert '"Orders"' in mask_literals('DROP TABLE "Orders"')


def test_strip_comments_keeps_strings():
    assert strip_comments("SET lock_timeout = '5s' -- bound").strip() == (
        "SET lock_timeout = '5s'"
    )


def test_outside_transaction_statements():
    for sql in (
        "CREATE INDEX CONCURRENTLY i ON t (x)",
        "create unique index concurrently i on t (x)",
        "DROP INDEX CONCURRENTLY i",
        "REINDEX INDEX CONCURRENTLY i",
        "VACUUM ANALYZE t",
        "CREATE DATABASE d",
        "ALTER SYSTEM SET work_mem = '8MB'",
    ):
        assert runs_outside_transaction(sql), sql


def test_inside_transaction_statements():
    for sql in (
        "CREATE INDEX i ON t (x)",
        "INSERT INTO t VALUES ('CREATE INDEX CONCURRENTLY')",
        "-- VACUUM\nSELECT 1",
        "REINDEX INDEX i",
    ):
        assert not runs_outside_transaction(sql), sql


def test_transaction_control_statements():
    assert is_transaction_control("BEGIN")
    assert is_transaction_control("commit")
    assert is_transaction_control("START TRANSACTION ISOLATION LEVEL SERIALIZABLE")
    assert not is_transaction_control("CREATE FUNCTION f() AS $$ BEGIN END $$")
