"""Static lint of migration statements: data loss and long locks on existing tables.

The rules read each statement's text with comments removed and string literals
blanked (see ``daw.migrate.sql.mask_literals``), so a keyword inside a literal or a
function body never matches. They follow PostgreSQL's locking rules. A statement
that no rule recognises yields no finding.

NOTE: statements inside a ``DO`` block or another dollar-quoted body are not
linted, because their text is blanked with the rest of the literal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daw.migrate.sql import (
    Statement,
    mask_literals,
    runs_outside_transaction,
    strip_comments,
)
from daw.models import Finding, disambiguate, fingerprint, normalise_snippet

TOOL = "daw-migrate-lint"
DESTRUCTIVE = "migration_destructive"
LOCK_RISK = "migration_lock_risk"

_FLAGS = re.IGNORECASE | re.DOTALL
# An identifier starts with a letter or underscore; \w covers non-ASCII letters
# and compiles far faster than an explicit \x80-\uffff range.
_IDENT = r'(?:"(?:[^"]|"")+"|[^\W\d][\w$]*)'
_QUALIFIED = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_NAME_PART = re.compile(_IDENT)
_LEADING_NAME = re.compile(rf"\s*(?:ONLY\s+)?(?P<name>{_QUALIFIED})", re.IGNORECASE)


@dataclass(frozen=True)
class LintContext:
    """Facts about the database before the migration runs.

    ``existing_tables`` are lower-case table names, bare or schema-qualified; None
    means unknown, and then every table not created earlier in the same migration
    counts as existing. ``large_tables`` are the tables over the size threshold.
    ``column_types`` maps ``table.column`` (or ``schema.table.column``) to the
    type as PostgreSQL's ``format_type`` spells it, such as ``character
    varying(20)``. The type-change rule needs it to tell a widening from a rewrite.
    """

    existing_tables: frozenset[str] | None = None
    large_tables: frozenset[str] = frozenset()
    column_types: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hit:
    rule_id: str
    category: str
    severity: str
    line: int
    message: str


@dataclass
class _FileState:
    """Effects of the earlier statements of one file: tables created, timeouts set."""

    context: LintContext
    autocommit: bool
    created_tables: set[str] = field(default_factory=set)
    created_indexes: set[str] = field(default_factory=set)
    lock_timeout_set: bool = False
    lock_timeout_reported: bool = False

    def existing(self, table: str) -> bool:
        if table in self.created_tables:
            return False
        known = self.context.existing_tables
        if known is None:
            return True
        return _name_in(table, known)

    def large(self, table: str) -> bool:
        return table not in self.created_tables and _name_in(
            table, self.context.large_tables
        )


def lint_statements(statements: list[Statement], context: LintContext) -> list[Finding]:
    """Lint the statements of one or more files and return sorted findings.

    Statements of different files are linted as separate migrations: a table
    created in one file counts as existing in the next one only if the context lists
    it. Fingerprints come from the tool, rule, path and the statement text with
    comments removed and whitespace collapsed, so they survive moving the statement.
    """
    findings: list[Finding] = []
    for path, group in _group_by_path(statements).items():
        autocommit = any(runs_outside_transaction(s.text) for s in group)
        state = _FileState(context=context, autocommit=autocommit)
        for statement in group:
            for hit in _lint_one(statement, state):
                findings.append(_finding(statement, path, hit))
    return disambiguate(findings)


def _group_by_path(statements: list[Statement]) -> dict[str, list[Statement]]:
    groups: dict[str, list[Statement]] = {}
    for statement in statements:
        groups.setdefault(statement.path, []).append(statement)
    return groups


def _finding(statement: Statement, path: str, hit: _Hit) -> Finding:
    snippet = normalise_snippet(strip_comments(statement.text))
    return Finding(
        category=hit.category,
        tool=TOOL,
        rule_id=hit.rule_id,
        message=hit.message,
        path=path,
        line=hit.line,
        severity=hit.severity,
        fingerprint=fingerprint(TOOL, hit.rule_id, path, snippet),
    )


def _lint_one(statement: Statement, state: _FileState) -> list[_Hit]:
    code = mask_literals(statement.text)
    hits: list[_Hit] = []
    for rule in _STATEMENT_RULES:
        hits.extend(rule(statement, code, state))

    lock_target = _exclusive_lock_target(code, state)
    if lock_target and not state.lock_timeout_set and not state.lock_timeout_reported:
        state.lock_timeout_reported = True
        hits.append(_missing_lock_timeout(statement, lock_target))

    _track(statement, code, state)
    return hits


def _prefix(statement: Statement, line: int | None = None) -> str:
    return f"statement {statement.index} (line {line or statement.line})"


def _line_at(statement: Statement, code: str, offset: int) -> int:
    return statement.line + code.count("\n", 0, offset)


# Names


def normalise_name(raw: str) -> str:
    """Return a (possibly qualified) SQL name as PostgreSQL resolves it.

    Unquoted parts fold to lower case, quoted parts keep their case and lose the
    quotes: ``Public."Orders"`` becomes ``public.Orders``.
    """
    leading = _LEADING_NAME.match(raw)
    if leading is None:
        return ""
    parts = []
    for match in _NAME_PART.finditer(leading.group("name")):
        part = match.group()
        if part.startswith('"'):
            parts.append(part[1:-1].replace('""', '"'))
        else:
            parts.append(part.lower())
    return ".".join(parts)


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _name_in(name: str, names: frozenset[str]) -> bool:
    """Match ``name`` against ``names``; a bare name matches any schema's table."""
    if name in names:
        return True
    for entry in names:
        same_table = _bare(entry) == _bare(name)
        if same_table and ("." not in entry or "." not in name):
            return True
    return False


def _split_names(raw: str) -> list[str]:
    names = [normalise_name(part) for part in _split_top_level(raw)]
    return [name for name in names if name]


def _split_top_level(text: str) -> list[str]:
    return [text[start:end] for start, end in _top_level_spans(text)]


def _top_level_spans(text: str) -> list[tuple[int, int]]:
    """Return the spans of ``text`` between commas outside parentheses and quotes."""
    spans = []
    depth = 0
    start = 0
    quoted = False
    for offset, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            spans.append((start, offset))
            start = offset + 1
    spans.append((start, len(text)))
    return spans


# ALTER TABLE and its actions

_ALTER_TABLE = re.compile(
    rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_QUALIFIED})"
    r"\s*\*?\s+(?P<actions>\S.*)$",
    _FLAGS,
)
_ADD_CONSTRAINT_WORDS = {
    "constraint",
    "primary",
    "unique",
    "check",
    "foreign",
    "exclude",
}
_ADD_COLUMN = re.compile(
    rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?P<column>{_IDENT})\s+(?P<rest>.*)$",
    _FLAGS,
)
_ADD_CONSTRAINT = re.compile(
    rf"^ADD\s+(?:CONSTRAINT\s+(?P<name>{_IDENT})\s+)?"
    r"(?P<kind>FOREIGN\s+KEY|CHECK|PRIMARY\s+KEY|UNIQUE|EXCLUDE)\b(?P<rest>.*)$",
    _FLAGS,
)
_DROP_CONSTRAINT = re.compile(
    rf"^DROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?(?P<name>{_IDENT})", _FLAGS
)
_DROP_COLUMN = re.compile(
    rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?P<column>{_IDENT})", _FLAGS
)
_ALTER_TYPE = re.compile(
    rf"^ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+(?:SET\s+DATA\s+)?TYPE\s+"
    r"(?P<type>.+?)(?P<using>\s+(?:COLLATE|USING)\b.*)?$",
    _FLAGS,
)
_SET_NOT_NULL = re.compile(
    rf"^ALTER\s+(?:COLUMN\s+)?(?P<column>{_IDENT})\s+SET\s+NOT\s+NULL\b", _FLAGS
)
_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+(?P<new>{_QUALIFIED})", _FLAGS)
_RENAME_COLUMN = re.compile(
    rf"^RENAME\s+(?:COLUMN\s+)?(?P<old>{_IDENT})\s+TO\s+(?P<new>{_IDENT})", _FLAGS
)


@dataclass(frozen=True)
class _Action:
    """One comma-separated action of an ALTER TABLE statement."""

    table: str
    text: str
    line: int


def _alter_actions(statement: Statement, code: str) -> list[_Action]:
    match = _ALTER_TABLE.match(code)
    if not match:
        return []
    table = normalise_name(match.group("table"))
    base = match.start("actions")
    actions = []
    for start, end in _top_level_spans(match.group("actions")):
        raw = match.group("actions")[start:end]
        offset = base + start + len(raw) - len(raw.lstrip())
        line = _line_at(statement, code, offset)
        actions.append(_Action(table=table, text=raw.strip(), line=line))
    return actions


def _alter_table_rules(
    statement: Statement, code: str, state: _FileState
) -> list[_Hit]:
    hits: list[_Hit] = []
    for action in _alter_actions(statement, code):
        if not state.existing(action.table):
            continue
        for rule in _ACTION_RULES:
            hit = rule(statement, action, state)
            if hit is not None:
                hits.append(hit)
    return hits


def _not_null_without_default(
    statement: Statement, action: _Action, state: _FileState
) -> _Hit | None:
    match = _ADD_COLUMN.match(action.text)
    if not match or match.group("column").lower() in _ADD_CONSTRAINT_WORDS:
        return None
    rest = match.group("rest")
    if not re.search(r"\bNOT\s+NULL\b", rest, _FLAGS):
        return None
    if re.search(r"\b(?:DEFAULT|GENERATED)\b", rest, _FLAGS):
        return None
    column = f"{action.table}.{normalise_name(match.group('column'))}"
    message = (
        f"{_prefix(statement, action.line)}: ADD COLUMN {column} is NOT NULL "
        f"without a DEFAULT, so it fails at run time when {action.table} has rows, "
        f"and it holds an ACCESS EXCLUSIVE lock on {action.table}; add a DEFAULT, "
        "or add the column as NULL, backfill it, then SET NOT NULL"
    )
    return _Hit("not-null-without-default", LOCK_RISK, "medium", action.line, message)


def _constraint_rules(
    statement: Statement, action: _Action, state: _FileState
) -> _Hit | None:
    match = _ADD_CONSTRAINT.match(action.text)
    if not match:
        return None
    kind = " ".join(match.group("kind").upper().split())
    rest = match.group("rest")

    if kind in {"FOREIGN KEY", "CHECK"}:
        if not state.large(action.table) or re.search(r"\bNOT\s+VALID\b", rest, _FLAGS):
            return None
        message = (
            f"{_prefix(statement, action.line)}: ADD {kind} on the large table "
            f"{action.table} without NOT VALID scans every row while it holds a lock "
            "that blocks writes; add it NOT VALID, then run VALIDATE CONSTRAINT "
            "in a later statement"
        )
        return _Hit(
            "constraint-without-not-valid", LOCK_RISK, "medium", action.line, message
        )

    if kind in {"PRIMARY KEY", "UNIQUE"} and not re.search(
        r"\bUSING\s+INDEX\b", rest, _FLAGS
    ):
        message = (
            f"{_prefix(statement, action.line)}: ADD {kind} on {action.table} builds "
            f"an index while it holds an ACCESS EXCLUSIVE lock on {action.table}; "
            "build a unique index CONCURRENTLY first, then ADD CONSTRAINT ... "
            "USING INDEX"
        )
        return _Hit(
            "constraint-builds-index", LOCK_RISK, "medium", action.line, message
        )
    return None


def _drop_constraint(
    statement: Statement, action: _Action, state: _FileState
) -> _Hit | None:
    match = _DROP_CONSTRAINT.match(action.text)
    if not match:
        return None
    name = normalise_name(match.group("name"))
    message = (
        f"{_prefix(statement, action.line)}: DROP CONSTRAINT {name} on "
        f"{action.table} deletes no data but takes an ACCESS EXCLUSIVE lock on "
        f"{action.table} (and on the referenced table for a foreign key), and rows "
        "written afterwards are no longer checked"
    )
    return _Hit("drop-constraint", LOCK_RISK, "low", action.line, message)


def _drop_column(
    statement: Statement, action: _Action, state: _FileState
) -> _Hit | None:
    if _DROP_CONSTRAINT.match(action.text):
        return None
    match = _DROP_COLUMN.match(action.text)
    if not match:
        return None
    column = f"{action.table}.{normalise_name(match.group('column'))}"
    message = f"{_prefix(statement, action.line)}: DROP COLUMN {column} deletes data"
    return _Hit("drop-column", DESTRUCTIVE, "high", action.line, message)


def _column_type_rewrite(
    statement: Statement, action: _Action, state: _FileState
) -> _Hit | None:
    match = _ALTER_TYPE.match(action.text)
    if not match:
        return None
    column = normalise_name(match.group("column"))
    new_type = _normalise_type(match.group("type"))
    old_type = _column_type(state.context, action.table, column)
    if (
        match.group("using") is None
        and old_type
        and _binary_coercible(old_type, new_type)
    ):
        return None

    if old_type is None:
        reason = (
            "the current type is unknown, so DAW assumes a rewrite; only varchar(n) "
            "to text or to a longer varchar skips it"
        )
    else:
        reason = f"changing {old_type} to {new_type} is not a varchar widening"
    message = (
        f"{_prefix(statement, action.line)}: ALTER COLUMN {action.table}.{column} "
        f"TYPE {new_type} rewrites {action.table} and its indexes under an ACCESS "
        f"EXCLUSIVE lock ({reason})"
    )
    return _Hit("column-type-rewrite", LOCK_RISK, "medium", action.line, message)


def _set_not_null(
    statement: Statement, action: _Action, state: _FileState
) -> _Hit | None:
    match = _SET_NOT_NULL.match(action.text)
    if not match or not state.large(action.table):
        return None
    column = f"{action.table}.{normalise_name(match.group('column'))}"
    message = (
        f"{_prefix(statement, action.line)}: SET NOT NULL on {column} scans the "
        f"large table {action.table} under an ACCESS EXCLUSIVE lock; add a CHECK "
        f"({column.rsplit('.', 1)[-1]} IS NOT NULL) NOT VALID constraint, validate "
        "it, then SET NOT NULL (PostgreSQL 12 and later skip the scan)"
    )
    return _Hit("set-not-null-scan", LOCK_RISK, "medium", action.line, message)


def _rename(statement: Statement, action: _Action, state: _FileState) -> _Hit | None:
    table_match = _RENAME_TABLE.match(action.text)
    if table_match:
        new = normalise_name(table_match.group("new"))
        message = (
            f"{_prefix(statement, action.line)}: RENAME TO {new} renames table "
            f"{action.table}, which breaks running clients: code deployed before this "
            f"migration still reads {action.table}; create a view with the old name "
            "or rename in a later release"
        )
        return _Hit("rename-table", DESTRUCTIVE, "high", action.line, message)

    column_match = _RENAME_COLUMN.match(action.text)
    if not column_match or column_match.group("old").lower() == "constraint":
        return None
    old = f"{action.table}.{normalise_name(column_match.group('old'))}"
    new = normalise_name(column_match.group("new"))
    message = (
        f"{_prefix(statement, action.line)}: RENAME COLUMN {old} TO {new} breaks "
        f"running clients: code deployed before this migration still reads {old}; "
        "add the new column, copy the data and drop the old one once every client "
        "has moved"
    )
    return _Hit("rename-column", DESTRUCTIVE, "high", action.line, message)


_ActionRule = Callable[[Statement, _Action, _FileState], "_Hit | None"]
_ACTION_RULES: tuple[_ActionRule, ...] = (
    _not_null_without_default,
    _constraint_rules,
    _drop_constraint,
    _drop_column,
    _column_type_rewrite,
    _set_not_null,
    _rename,
)


# Column types

_VARCHAR = re.compile(r"^(?:varchar|character varying)(?:\((?P<length>\d+)\))?$")


def _normalise_type(raw: str) -> str:
    return " ".join(raw.lower().replace(" (", "(").split())


def _column_type(context: LintContext, table: str, column: str) -> str | None:
    for key in (f"{table}.{column}", f"{_bare(table)}.{column}"):
        if key in context.column_types:
            return _normalise_type(context.column_types[key])
    for key, value in context.column_types.items():
        if key.endswith(f".{_bare(table)}.{column}") and "." not in table:
            return _normalise_type(value)
    return None


def _binary_coercible(old: str, new: str) -> bool:
    """Tell whether PostgreSQL changes ``old`` to ``new`` without a table rewrite.

    Only the two common cases are recognised: varchar to text or to unbounded
    varchar, and varchar(n) to varchar(m) with m >= n.
    """
    old_match = _VARCHAR.match(old)
    if old_match is None:
        return False
    if new == "text":
        return True
    new_match = _VARCHAR.match(new)
    if new_match is None:
        return False
    if new_match.group("length") is None:
        return True
    if old_match.group("length") is None:
        return False
    return int(new_match.group("length")) >= int(old_match.group("length"))


# Whole-statement rules

_CREATE_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?"
    rf"(?:IF\s+NOT\s+EXISTS\s+)?(?:(?P<index>{_QUALIFIED})\s+)?ON\s+(?:ONLY\s+)?"
    rf"(?P<table>{_QUALIFIED})",
    _FLAGS,
)
_DROP_TABLE = re.compile(
    r"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<names>.+?)"
    r"(?:\s+(?:CASCADE|RESTRICT))?\s*$",
    _FLAGS,
)
_TRUNCATE = re.compile(
    r"^\s*TRUNCATE\s+(?:TABLE\s+)?(?P<names>.+?)"
    r"(?:\s+(?:RESTART|CONTINUE)\s+IDENTITY)?(?:\s+(?:CASCADE|RESTRICT))?\s*$",
    _FLAGS,
)
_DROP_SCHEMA = re.compile(
    r"^\s*DROP\s+SCHEMA\s+(?:IF\s+EXISTS\s+)?(?P<names>.+?)"
    r"(?:\s+(?:CASCADE|RESTRICT))?\s*$",
    _FLAGS,
)
_DROP_DATABASE = re.compile(
    rf"^\s*DROP\s+DATABASE\s+(?:IF\s+EXISTS\s+)?(?P<name>{_IDENT})", _FLAGS
)
_DELETE = re.compile(
    rf"^\s*DELETE\s+FROM\s+(?:ONLY\s+)?(?P<table>{_QUALIFIED})(?P<rest>.*)$", _FLAGS
)


def _drop_table(statement: Statement, code: str, state: _FileState) -> list[_Hit]:
    match = _DROP_TABLE.match(code)
    if not match:
        return []
    tables = [
        name for name in _split_names(match.group("names")) if state.existing(name)
    ]
    if not tables:
        return []
    message = f"{_prefix(statement)}: DROP TABLE {', '.join(tables)} deletes data"
    return [_Hit("drop-table", DESTRUCTIVE, "high", statement.line, message)]


def _truncate(statement: Statement, code: str, state: _FileState) -> list[_Hit]:
    match = _TRUNCATE.match(code)
    if not match:
        return []
    names = _split_names(match.group("names"))
    tables = [name for name in names if state.existing(name)]
    if not tables:
        return []
    message = f"{_prefix(statement)}: TRUNCATE {', '.join(tables)} deletes every row"
    return [_Hit("truncate", DESTRUCTIVE, "high", statement.line, message)]


def _drop_schema(statement: Statement, code: str, state: _FileState) -> list[_Hit]:
    match = _DROP_SCHEMA.match(code)
    if not match:
        return []
    names = ", ".join(_split_names(match.group("names")))
    message = (
        f"{_prefix(statement)}: DROP SCHEMA {names} deletes data in every table "
        "of the schema"
    )
    return [_Hit("drop-schema", DESTRUCTIVE, "high", statement.line, message)]


def _drop_database(statement: Statement, code: str, state: _FileState) -> list[_Hit]:
    match = _DROP_DATABASE.match(code)
    if not match:
        return []
    name = normalise_name(match.group("name"))
    message = f"{_prefix(statement)}: DROP DATABASE {name} deletes the whole database"
    return [_Hit("drop-database", DESTRUCTIVE, "high", statement.line, message)]


def _delete_without_where(
    statement: Statement, code: str, state: _FileState
) -> list[_Hit]:
    match = _DELETE.match(code)
    if not match or re.search(r"\bWHERE\b", match.group("rest"), _FLAGS):
        return []
    table = normalise_name(match.group("table"))
    if not state.existing(table):
        return []
    message = (
        f"{_prefix(statement)}: DELETE FROM {table} without WHERE deletes every row"
    )
    return [_Hit("delete-without-where", DESTRUCTIVE, "high", statement.line, message)]


def _index_without_concurrently(
    statement: Statement, code: str, state: _FileState
) -> list[_Hit]:
    match = _CREATE_INDEX.match(code)
    if not match or match.group("concurrently"):
        return []
    table = normalise_name(match.group("table"))
    if not state.existing(table):
        return []
    message = (
        f"{_prefix(statement)}: CREATE INDEX on {table} without CONCURRENTLY blocks "
        f"every write to {table} until the index is built; use CREATE INDEX "
        "CONCURRENTLY (DAW then runs the migration outside a transaction)"
    )
    return [
        _Hit("index-without-concurrently", LOCK_RISK, "medium", statement.line, message)
    ]


_StatementRule = Callable[[Statement, str, _FileState], list[_Hit]]
_STATEMENT_RULES: tuple[_StatementRule, ...] = (
    _alter_table_rules,
    _drop_table,
    _truncate,
    _drop_schema,
    _drop_database,
    _delete_without_where,
    _index_without_concurrently,
)


# Lock timeout

_SET_LOCK_TIMEOUT = re.compile(
    r"^\s*SET\s+(?P<scope>SESSION\s+|LOCAL\s+)?lock_timeout\s*(?:=|\bTO\b)\s*(?P<value>.+?)\s*$",
    _FLAGS,
)
_SET_CONFIG_LOCK_TIMEOUT = re.compile(
    r"^\s*SELECT\s+(?:pg_catalog\s*\.\s*)?set_config\s*\(\s*'lock_timeout'\s*,"
    r"\s*'(?P<value>[^']*)'\s*,\s*(?P<local>\w+)",
    _FLAGS,
)
_RESET_LOCK_TIMEOUT = re.compile(r"^\s*RESET\s+(?:lock_timeout|ALL)\b", _FLAGS)
_LOCKING_STATEMENT = re.compile(
    r"^\s*(?:LOCK\b|CLUSTER\b|VACUUM\s+(?:\(\s*)?FULL\b|REINDEX\b(?![^;]*\bCONCURRENTLY\b)"
    r"|REFRESH\s+MATERIALIZED\s+VIEW\b(?!\s+CONCURRENTLY\b))",
    _FLAGS,
)
_CREATE_TRIGGER = re.compile(
    rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:CONSTRAINT\s+)?TRIGGER\b.*?\bON\s+"
    rf"(?P<table>{_QUALIFIED})",
    _FLAGS,
)
_DROP_INDEX = re.compile(
    r"^\s*DROP\s+INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?"
    r"(?P<names>.+?)(?:\s+(?:CASCADE|RESTRICT))?\s*$",
    _FLAGS,
)


def _exclusive_lock_target(code: str, state: _FileState) -> str | None:
    """Return what a statement locks in a way that queues behind running queries.

    These are ALTER TABLE, CREATE INDEX without CONCURRENTLY, DROP TABLE,
    TRUNCATE, DROP INDEX without CONCURRENTLY, CREATE TRIGGER, LOCK, CLUSTER,
    VACUUM FULL, REINDEX and REFRESH MATERIALIZED VIEW, on tables that existed
    before the migration. None means the statement takes no such lock.
    """
    for pattern in (_ALTER_TABLE, _CREATE_INDEX, _CREATE_TRIGGER):
        match = pattern.match(code)
        if match and not match.groupdict().get("concurrently"):
            table = normalise_name(match.group("table"))
            return table if state.existing(table) else None

    for pattern in (_DROP_TABLE, _TRUNCATE):
        match = pattern.match(code)
        if match:
            tables = [
                n for n in _split_names(match.group("names")) if state.existing(n)
            ]
            return ", ".join(tables) or None

    drop_index = _DROP_INDEX.match(code)
    if drop_index and not drop_index.group("concurrently"):
        names = _split_names(drop_index.group("names"))
        kept = [name for name in names if name not in state.created_indexes]
        return f"the table of index {', '.join(kept)}" if kept else None

    locking = _LOCKING_STATEMENT.match(code)
    return " ".join(code.split()[:4]) if locking else None


def _missing_lock_timeout(statement: Statement, target: str) -> _Hit:
    message = (
        f"{_prefix(statement)}: the migration locks {target} without a preceding "
        "SET lock_timeout, so the lock request can wait behind a long query while "
        "every later query on the table waits behind it; start the migration with "
        "SET lock_timeout = '5s' (or another bound) and retry on timeout"
    )
    return _Hit("missing-lock-timeout", LOCK_RISK, "medium", statement.line, message)


def _lock_timeout_change(plain: str, autocommit: bool) -> bool | None:
    """Return True when the statement sets a non-zero lock_timeout, False when it
    clears it, None when it does not touch it.

    A ``SET LOCAL`` or a transaction-local ``set_config`` counts only when the
    migration runs in one transaction; in autocommit mode it ends with its own
    statement.
    """
    if _RESET_LOCK_TIMEOUT.match(plain):
        return False

    match = _SET_LOCK_TIMEOUT.match(plain)
    if match:
        local = (match.group("scope") or "").strip().upper() == "LOCAL"
        return _timeout_value_set(match.group("value")) and not (local and autocommit)

    match = _SET_CONFIG_LOCK_TIMEOUT.match(plain)
    if match:
        local = match.group("local").lower() == "true"
        return _timeout_value_set(match.group("value")) and not (local and autocommit)
    return None


def _timeout_value_set(raw: str) -> bool:
    value = raw.strip().strip("'\"").strip().lower()
    if value in {"default", ""}:
        return False
    return re.fullmatch(r"0+(?:\.0*)?\s*(?:us|ms|s|min|h|d)?", value) is None


def _track(statement: Statement, code: str, state: _FileState) -> None:
    """Record what the statement creates and whether it sets lock_timeout."""
    plain = strip_comments(statement.text)
    change = _lock_timeout_change(plain, state.autocommit)
    if change is not None:
        state.lock_timeout_set = change

    created = _CREATE_TABLE.match(code)
    if created:
        table = normalise_name(created.group("table"))
        if not (created.group("if_not_exists") and state.existing(table)):
            state.created_tables.add(table)

    index = _CREATE_INDEX.match(code)
    if index and index.group("index"):
        state.created_indexes.add(normalise_name(index.group("index")))


_CREATE_TABLE = re.compile(
    r"^\s*CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+"
    rf"(?P<if_not_exists>IF\s+NOT\s+EXISTS\s+)?(?P<table>{_QUALIFIED})",
    _FLAGS,
)


# Reading the context from a database


def read_lint_context(conn: Any, *, large_table_bytes: int) -> LintContext:
    """Read existing tables, large tables and column types from a live database.

    ``conn`` is a psycopg 3 or sqlite3 connection. On PostgreSQL a table is large
    when ``pg_total_relation_size`` (table, indexes and TOAST) is at least
    ``large_table_bytes``. SQLite reports no sizes, so its large-table set is empty.
    The caller's transaction state is left as it was.
    """
    import sqlite3

    if isinstance(conn, sqlite3.Connection):
        return _sqlite_context(conn)
    return _postgres_context(conn, large_table_bytes)


def _postgres_context(conn: Any, large_table_bytes: int) -> LintContext:
    tables_sql = (
        "SELECT n.nspname, c.relname, pg_total_relation_size(c.oid) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%%'"
    )
    columns_sql = (
        "SELECT n.nspname, c.relname, a.attname, "
        "format_type(a.atttypid, a.atttypmod) "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    )
    with conn.cursor() as cursor:
        tables = cursor.execute(tables_sql, ()).fetchall()
        columns = cursor.execute(columns_sql, ()).fetchall()
    if not conn.autocommit:
        conn.rollback()

    existing = frozenset(f"{schema}.{name}" for schema, name, _ in tables)
    large = frozenset(
        f"{schema}.{name}" for schema, name, size in tables if size >= large_table_bytes
    )
    types = {
        f"{schema}.{table}.{column}": kind for schema, table, column, kind in columns
    }
    return LintContext(existing_tables=existing, large_tables=large, column_types=types)


def _sqlite_context(conn: Any) -> LintContext:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    tables = [row[0] for row in rows]
    types = {}
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        for column in conn.execute(f"PRAGMA table_info({quoted})").fetchall():
            types[f"{table.lower()}.{column[1]}"] = str(column[2]).lower()
    existing = frozenset(table.lower() for table in tables)
    return LintContext(existing_tables=existing, column_types=types)
