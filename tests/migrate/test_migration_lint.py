"""Migration lint rules: each rule positive and negative, lines and fingerprints."""

from __future__ import annotations

from daw.migrate.lint import LintContext, lint_statements
from daw.migrate.sql import split_statements
from daw.models import Finding, fingerprint, normalise_snippet

TIMEOUT = "SET lock_timeout = '5s';\n"


def lint(sql: str, context: LintContext | None = None, path: str = "m.sql"):
    return lint_statements(split_statements(sql, path), context or LintContext())


def rules(sql: str, context: LintContext | None = None) -> list[str]:
    return sorted(finding.rule_id for finding in lint(TIMEOUT + sql, context))


def only(findings: list[Finding], rule_id: str) -> Finding:
    matching = [finding for finding in findings if finding.rule_id == rule_id]
    assert len(matching) == 1, [f.rule_id for f in findings]
    return matching[0]


def test_not_null_without_default_flagged():
    assert rules("ALTER TABLE orders ADD COLUMN status text NOT NULL") == [
        "not-null-without-default"
    ]


def test_not_null_message_says_it_fails_with_rows():
    finding = only(
        lint(TIMEOUT + "ALTER TABLE orders ADD COLUMN status text NOT NULL"),
        "not-null-without-default",
    )
    assert "fails at run time when orders has rows" in finding.message
    assert finding.category == "migration_lock_risk"
    assert finding.severity == "medium"


def test_not_null_with_default_clean():
    assert (
        rules("ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new'") == []
    )


def test_nullable_column_clean():
    assert rules("ALTER TABLE orders ADD COLUMN note text") == []


def test_not_null_on_new_table_clean():
    sql = "CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN c int NOT NULL"
    assert rules(sql) == []


def test_not_null_in_second_action_flagged():
    sql = "ALTER TABLE orders ADD COLUMN a int DEFAULT 1,\n  ADD COLUMN b int NOT NULL"
    finding = only(lint(TIMEOUT + sql), "not-null-without-default")
    assert finding.line == 3
    assert "orders.b" in finding.message


def test_not_null_default_elsewhere_flagged():
    sql = "ALTER TABLE orders ADD COLUMN b int NOT NULL, ALTER COLUMN a SET DEFAULT 1"
    assert rules(sql) == ["not-null-without-default"]


def test_index_without_concurrently_flagged():
    assert rules("CREATE INDEX orders_status ON orders (status)") == [
        "index-without-concurrently"
    ]


def test_unique_index_without_concurrently_flagged():
    assert rules("CREATE UNIQUE INDEX ON public.orders (code)") == [
        "index-without-concurrently"
    ]


def test_index_concurrently_clean():
    assert rules("CREATE INDEX CONCURRENTLY orders_status ON orders (status)") == []


def test_index_on_new_table_clean():
    sql = "CREATE TABLE t (id int);\nCREATE INDEX t_id ON t (id)"
    assert rules(sql) == []


def test_index_on_table_missing_from_context_clean():
    context = LintContext(existing_tables=frozenset({"customers"}))
    assert rules("CREATE INDEX i ON orders (status)", context) == []


def test_index_on_qualified_existing_table_flagged():
    context = LintContext(existing_tables=frozenset({"public.orders"}))
    assert rules("CREATE INDEX i ON orders (status)", context) == [
        "index-without-concurrently"
    ]


def test_type_change_unknown_old_type_flagged():
    finding = only(
        lint(TIMEOUT + "ALTER TABLE orders ALTER COLUMN total TYPE bigint"),
        "column-type-rewrite",
    )
    assert "current type is unknown" in finding.message


def test_type_change_varchar_to_text_clean():
    context = LintContext(column_types={"orders.note": "character varying(20)"})
    assert rules("ALTER TABLE orders ALTER COLUMN note TYPE text", context) == []


def test_type_change_longer_varchar_clean():
    context = LintContext(column_types={"public.orders.note": "varchar(20)"})
    assert rules("ALTER TABLE orders ALTER note TYPE varchar(50)", context) == []


def test_type_change_shorter_varchar_flagged():
    context = LintContext(column_types={"orders.note": "character varying(20)"})
    assert rules("ALTER TABLE orders ALTER COLUMN note TYPE varchar(10)", context) == [
        "column-type-rewrite"
    ]


def test_type_change_int_to_text_flagged():
    context = LintContext(column_types={"orders.total": "integer"})
    assert rules("ALTER TABLE orders ALTER COLUMN total TYPE text", context) == [
        "column-type-rewrite"
    ]


def test_type_change_with_using_flagged():
    context = LintContext(column_types={"orders.note": "character varying(20)"})
    sql = "ALTER TABLE orders ALTER COLUMN note SET DATA TYPE text USING trim(note)"
    assert rules(sql, context) == ["column-type-rewrite"]


def test_drop_table_flagged():
    finding = only(lint(TIMEOUT + "DROP TABLE IF EXISTS orders CASCADE"), "drop-table")
    assert finding.category == "migration_destructive"
    assert finding.severity == "high"
    assert finding.message == "statement 2 (line 2): DROP TABLE orders deletes data"


def test_drop_table_created_in_same_file_clean():
    assert rules("CREATE TABLE tmp (id int);\nDROP TABLE tmp") == []


def test_drop_column_message():
    finding = only(lint(TIMEOUT + "ALTER TABLE orders DROP COLUMN note"), "drop-column")
    assert (
        finding.message == "statement 2 (line 2): DROP COLUMN orders.note deletes data"
    )


def test_drop_column_without_keyword_flagged():
    assert rules("ALTER TABLE orders DROP IF EXISTS note") == ["drop-column"]


def test_truncate_flagged():
    assert rules("TRUNCATE TABLE ONLY orders RESTART IDENTITY") == ["truncate"]


def test_drop_schema_flagged():
    assert rules("DROP SCHEMA billing CASCADE") == ["drop-schema"]


def test_drop_database_flagged():
    assert rules("DROP DATABASE legacy") == ["drop-database"]


def test_delete_without_where_flagged():
    assert rules("DELETE FROM orders") == ["delete-without-where"]


def test_delete_with_where_clean():
    assert rules("DELETE FROM orders WHERE created < now() - interval '1 year'") == []


def test_drop_index_not_destructive():
    findings = lint(TIMEOUT + "DROP INDEX orders_status")
    assert [f for f in findings if f.category == "migration_destructive"] == []


def test_drop_constraint_low_lock_risk():
    finding = only(
        lint(TIMEOUT + "ALTER TABLE orders DROP CONSTRAINT orders_customer_fk"),
        "drop-constraint",
    )
    assert finding.category == "migration_lock_risk"
    assert finding.severity == "low"


def test_rename_column_flagged():
    finding = only(
        lint(TIMEOUT + "ALTER TABLE orders RENAME COLUMN note TO comment"),
        "rename-column",
    )
    assert finding.category == "migration_destructive"
    assert "still reads orders.note" in finding.message


def test_rename_table_flagged():
    assert rules("ALTER TABLE orders RENAME TO purchases") == ["rename-table"]


def test_rename_constraint_clean():
    assert rules("ALTER TABLE orders RENAME CONSTRAINT a TO b") == []


def test_foreign_key_on_large_table_flagged():
    context = LintContext(large_tables=frozenset({"orders"}))
    sql = (
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)"
    )
    assert rules(sql, context) == ["constraint-without-not-valid"]


def test_check_on_large_table_flagged():
    context = LintContext(large_tables=frozenset({"public.orders"}))
    sql = "ALTER TABLE public.orders ADD CHECK (total >= 0)"
    assert rules(sql, context) == ["constraint-without-not-valid"]


def test_foreign_key_not_valid_clean():
    context = LintContext(large_tables=frozenset({"orders"}))
    sql = (
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) "
        "REFERENCES customers (id) NOT VALID"
    )
    assert rules(sql, context) == []


def test_foreign_key_on_small_table_clean():
    sql = (
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id)"
    )
    assert rules(sql) == []


def test_unique_constraint_builds_index_flagged():
    assert rules("ALTER TABLE orders ADD CONSTRAINT u UNIQUE (code)") == [
        "constraint-builds-index"
    ]


def test_unique_constraint_using_index_clean():
    assert (
        rules("ALTER TABLE orders ADD CONSTRAINT u UNIQUE USING INDEX orders_code")
        == []
    )


def test_set_not_null_on_large_table_flagged():
    context = LintContext(large_tables=frozenset({"orders"}))
    sql = "ALTER TABLE orders ALTER COLUMN note SET NOT NULL"
    assert rules(sql, context) == ["set-not-null-scan"]


def test_keywords_in_string_literal_clean():
    sql = (
        "INSERT INTO audit (note) VALUES ('DROP TABLE orders; DELETE FROM orders');\n"
        "UPDATE audit SET note = 'ALTER TABLE orders DROP COLUMN x' WHERE id = 1"
    )
    assert rules(sql) == []


def test_keywords_in_comment_clean():
    assert rules("-- DROP TABLE orders;\nSELECT 1 /* TRUNCATE orders */") == []


def test_keywords_in_function_body_clean():
    sql = "CREATE FUNCTION f() RETURNS void AS $$ DELETE FROM orders $$ LANGUAGE sql"
    assert rules(sql) == []


def test_unreadable_statement_no_finding():
    assert rules("ALTER TABLE ;; DROP ;; CREATE INDEX ON ;; TRUNCATE") == []


def test_missing_lock_timeout_flagged_once():
    sql = (
        "SELECT 1;\nALTER TABLE orders ADD COLUMN a int;\nALTER TABLE orders ADD b int"
    )
    finding = only(lint(sql), "missing-lock-timeout")
    assert finding.line == 2
    assert finding.message.startswith(
        "statement 2 (line 2): the migration locks orders"
    )


def test_missing_lock_timeout_clean_with_set():
    assert rules("ALTER TABLE orders ADD COLUMN a int") == []


def test_missing_lock_timeout_set_after_lock_flagged():
    sql = "ALTER TABLE orders ADD COLUMN a int;\nSET lock_timeout = '5s'"
    assert [f.rule_id for f in lint(sql)] == ["missing-lock-timeout"]


def test_missing_lock_timeout_zero_does_not_count():
    sql = "SET lock_timeout = 0;\nALTER TABLE orders ADD COLUMN a int"
    assert [f.rule_id for f in lint(sql)] == ["missing-lock-timeout"]


def test_missing_lock_timeout_set_local_in_transaction_counts():
    sql = "SET LOCAL lock_timeout TO '2s';\nALTER TABLE orders ADD COLUMN a int"
    assert lint(sql) == []


def test_missing_lock_timeout_set_local_in_autocommit_ignored():
    sql = (
        "SET LOCAL lock_timeout = '2s';\n"
        "CREATE INDEX CONCURRENTLY i ON orders (a);\n"
        "ALTER TABLE orders ADD COLUMN a int"
    )
    assert [f.rule_id for f in lint(sql)] == ["missing-lock-timeout"]


def test_missing_lock_timeout_new_tables_only_clean():
    sql = (
        "CREATE TABLE t (id int);\n"
        "ALTER TABLE t ADD COLUMN c int;\n"
        "CREATE INDEX ON t (c)"
    )
    assert lint(sql) == []


def test_missing_lock_timeout_per_file():
    statements = split_statements(
        "ALTER TABLE a ADD c int", "1.sql"
    ) + split_statements("ALTER TABLE b ADD c int", "2.sql")
    findings = lint_statements(statements, LintContext())
    assert sorted(f.path for f in findings) == ["1.sql", "2.sql"]


def test_finding_fields():
    finding = only(
        lint(TIMEOUT + "DROP TABLE orders", path="db/0002_x.sql"), "drop-table"
    )
    assert finding.tool == "daw-migrate-lint"
    assert finding.path == "db/0002_x.sql"
    assert finding.line == 2
    expected = fingerprint(
        "daw-migrate-lint",
        "drop-table",
        "db/0002_x.sql",
        normalise_snippet("DROP TABLE orders"),
    )
    assert finding.fingerprint == expected


def test_fingerprint_stable_when_statement_moves_down():
    before = only(lint(TIMEOUT + "DROP TABLE orders"), "drop-table")
    after = only(
        lint(TIMEOUT + "SELECT 1;\n\n-- cleanup\nDROP   TABLE\n  orders"), "drop-table"
    )
    assert after.line != before.line
    assert after.fingerprint == before.fingerprint


def test_fingerprint_distinct_for_repeated_statement():
    findings = lint(TIMEOUT + "DROP TABLE orders;\nDROP TABLE orders")
    assert len({f.fingerprint for f in findings}) == 2


def test_findings_sorted_by_line():
    findings = lint("DROP TABLE a;\nDROP TABLE b;\nSET lock_timeout = '1s'")
    destructive = [f.line for f in findings if f.category == "migration_destructive"]
    assert destructive == [1, 2]
