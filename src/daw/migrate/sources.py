"""Migration sources: a folder of numbered .sql files, or an Alembic project.

A source lists its migrations with their statements and checksums, returns those
pending on a database, and applies them. SQL folders track applied versions in
DAW's own table ``daw_schema_migrations``; Alembic projects keep Alembic's
``alembic_version`` table and are applied by Alembic itself.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import re
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daw.migrate.errors import MigrationError, MigrationFailed
from daw.migrate.sql import (
    Statement,
    is_transaction_control,
    runs_outside_transaction,
    split_statements,
)
from daw.process import ToolError, run_tool
from daw.redact import redact

log = logging.getLogger(__name__)

VERSION_TABLE = "daw_schema_migrations"
DEFAULT_ALEMBIC_TIMEOUT_S = 600.0

_SQL_FILE = re.compile(r"^(?:[Vv])?(?P<version>\d+)(?:__|_)(?P<name>[^.]+)\.sql$")
_VERSION_LIKE = re.compile(r"^(?:[Vv])?\d+(?:__|_)")
_DIRECTIVE = re.compile(r"^\s*--\s*daw:\s*(?P<body>.*)$", re.IGNORECASE)
_CHANGES_ROWS = re.compile(r"^changes-rows\s+(?P<tables>\S.*)$", re.IGNORECASE)

StatementCallback = Callable[[Statement, float], None]


@dataclass(frozen=True)
class Migration:
    """One migration as its source defines it.

    ``path`` is relative to the source root and ``checksum`` is the sha256 of the
    file's bytes. ``transactional`` is False when a statement cannot run inside a
    transaction block (see ``daw.migrate.sql.runs_outside_transaction``).
    ``declared_row_changes`` are the lower-case tables whose row counts the file
    declares it changes, from comment lines ``-- daw: changes-rows orders, items``.
    """

    version: str
    name: str
    path: str
    checksum: str
    statements: tuple[Statement, ...]
    transactional: bool
    declared_row_changes: frozenset[str]

    @property
    def label(self) -> str:
        """The file name or revision that messages show for this migration."""
        return self.path


# SQL folders


class SqlFolderSource:
    """A folder of ``NNNN_name.sql`` or ``VNNNN__name.sql`` files, applied in order.

    The version is the numeric prefix without leading zeros and is compared as a
    number, so ``10_x.sql`` comes after ``9_y.sql``. Files whose names do not start
    with a version are ignored unless they end in ``.sql``; subfolders are not read.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def migrations(self) -> list[Migration]:
        """Read, check and return every migration, ordered by version.

        Raises MigrationError naming the file for a duplicate version, a .sql file
        without a version or a versioned file that is not .sql. Each file is read
        by ``read_sql_migration``, which raises for invalid content.
        """
        if not self.root.is_dir():
            raise MigrationError(
                f"migration folder {self.root} does not exist",
                hint="pass the folder that contains the numbered .sql files",
            )

        found: dict[int, Migration] = {}
        for file in sorted(self.root.iterdir(), key=lambda item: item.name):
            migration = self._read_entry(file)
            if migration is None:
                continue
            number = int(migration.version)
            if number in found:
                raise MigrationError(
                    f"{file.name}: version {number} is also used by "
                    f"{found[number].path}",
                    hint="give every migration file a distinct version number",
                )
            found[number] = migration
        return [found[number] for number in sorted(found)]

    def _read_entry(self, file: Path) -> Migration | None:
        if file.name.startswith(".") or not file.is_file():
            return None
        match = _SQL_FILE.match(file.name)
        if match is None:
            if file.suffix.lower() == ".sql":
                raise MigrationError(
                    f"{file.name}: migration file name has no version prefix",
                    hint="rename it like 0001_create_orders.sql or "
                    "V1__create_orders.sql",
                )
            if _VERSION_LIKE.match(file.name):
                raise MigrationError(
                    f"{file.name}: file has a version prefix but is not a .sql file",
                    hint="rename it to end in .sql, or move it out of the folder",
                )
            return None
        return read_sql_migration(
            file,
            version=str(int(match.group("version"))),
            name=match.group("name"),
            relative=file.name,
        )

    def applied(self, conn: Any) -> dict[str, str]:
        """Return version -> checksum of the migrations recorded in the database.

        A database without ``daw_schema_migrations`` has applied none. The
        connection's transaction state is left as it was.
        """
        driver = _Driver.of(conn)
        if not driver.table_exists(VERSION_TABLE):
            return {}
        rows = driver.query(f"SELECT version, checksum FROM {VERSION_TABLE}")
        return {str(version): str(checksum) for version, checksum in rows}

    def pending(self, conn: Any) -> list[Migration]:
        """Return the migrations not yet applied, in order.

        Raises MigrationError when an applied migration's file changed since, when
        the database records a version that no file has, or when a pending
        migration is older than the newest applied one.
        """
        applied = self.applied(conn)
        migrations = self.migrations()
        by_version = {migration.version: migration for migration in migrations}

        for version in sorted(applied, key=_version_key):
            migration = by_version.get(version)
            if migration is None:
                raise MigrationError(
                    f"the database records migration version {version}, but no file "
                    f"in {self.root} has that version",
                    hint="restore the missing migration file before migrating",
                )
            if migration.checksum != applied[version]:
                raise MigrationError(
                    f"{migration.path} was changed after it was applied",
                    hint="restore the applied file and put the change in a new "
                    "migration",
                )

        pending = [m for m in migrations if m.version not in applied]
        _check_order(pending, applied)
        return pending

    def apply(
        self,
        conn: Any,
        migration: Migration,
        *,
        on_statement: StatementCallback | None = None,
        in_transaction: bool = True,
    ) -> None:
        """Execute the migration's statements in order and record its version.

        When ``in_transaction`` is true and the migration is transactional, the
        statements and the version row run in one transaction that is rolled back
        on any error. Otherwise each statement commits on its own, so a failure
        leaves the earlier statements applied. ``on_statement`` receives each
        statement after it succeeds, with its duration in seconds.

        Raises MigrationFailed when a statement fails, and MigrationError when the
        version is already recorded or the connection has an open transaction.
        """
        driver = _Driver.of(conn)
        if migration.version in self.applied(conn):
            raise MigrationError(
                f"{migration.path}: version {migration.version} is already applied",
                hint="run only the pending migrations",
            )

        single = in_transaction and migration.transactional
        log.info(
            "applying %s (%d statements, %s)",
            migration.path,
            len(migration.statements),
            "one transaction" if single else "autocommit",
        )
        with driver.manual_transactions():
            if single:
                _apply_in_transaction(driver, migration, on_statement)
            else:
                _apply_autocommit(driver, migration, on_statement)


def read_sql_migration(
    file: Path, *, version: str, name: str, relative: str
) -> Migration:
    """Read one .sql migration file into a Migration.

    Raises MigrationError for a file that is not UTF-8, contains no statement, has
    an unknown ``-- daw:`` directive or controls the transaction itself.
    """
    data = file.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(
            f"{relative}: file is not valid UTF-8 (byte {exc.start})",
            hint="save the migration file as UTF-8",
        ) from exc

    statements = tuple(split_statements(text, relative))
    if not statements:
        raise MigrationError(
            f"{relative}: file contains no SQL statement",
            hint="add the migration's statements or remove the file",
        )
    _reject_transaction_control(statements)
    return Migration(
        version=version,
        name=name,
        path=relative,
        checksum=hashlib.sha256(data).hexdigest(),
        statements=statements,
        transactional=not any(runs_outside_transaction(s.text) for s in statements),
        declared_row_changes=_declared_row_changes(text, relative),
    )


def _reject_transaction_control(statements: tuple[Statement, ...]) -> None:
    for statement in statements:
        if is_transaction_control(statement.text):
            first_word = statement.text.split()[0].upper()
            raise MigrationError(
                f"{statement.path}:{statement.line}: statement {statement.index} "
                f"({first_word}) controls the transaction itself",
                hint="remove BEGIN/COMMIT: DAW runs each migration in one "
                "transaction, or in autocommit when a statement requires it",
            )


def _declared_row_changes(text: str, relative: str) -> frozenset[str]:
    tables: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        directive = _DIRECTIVE.match(line)
        if directive is None:
            continue
        changes = _CHANGES_ROWS.match(directive.group("body").strip())
        if changes is None:
            raise MigrationError(
                f"{relative}:{number}: unknown directive "
                f"'-- daw: {directive.group('body').strip()}'",
                hint="the only directive is '-- daw: changes-rows TABLE[, TABLE...]'",
            )
        for table in changes.group("tables").split(","):
            if table.strip():
                tables.add(table.strip().lower())
    return frozenset(tables)


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (sys.maxsize, version)


def _check_order(pending: list[Migration], applied: dict[str, str]) -> None:
    numeric = [int(version) for version in applied if version.isdigit()]
    if not pending or not numeric:
        return
    newest = max(numeric)
    if int(pending[0].version) < newest:
        raise MigrationError(
            f"{pending[0].path} is older than the newest applied version {newest}",
            hint=f"renumber the migration so that its version is above {newest}",
        )


def _apply_in_transaction(
    driver: _Driver, migration: Migration, on_statement: StatementCallback | None
) -> None:
    driver.execute("BEGIN")
    try:
        for statement in migration.statements:
            _run_statement(driver, migration, statement, on_statement, committed=0)
        _record(driver, migration)
    except BaseException:
        try:
            driver.execute("ROLLBACK")
        except driver.errors as exc:
            log.error("rollback of %s failed: %s", migration.path, redact(str(exc)))
            raise
        log.warning("rolled back %s", migration.path)
        raise
    driver.execute("COMMIT")


def _apply_autocommit(
    driver: _Driver, migration: Migration, on_statement: StatementCallback | None
) -> None:
    for done, statement in enumerate(migration.statements):
        _run_statement(driver, migration, statement, on_statement, committed=done)
    _record(driver, migration)


def _run_statement(
    driver: _Driver,
    migration: Migration,
    statement: Statement,
    on_statement: StatementCallback | None,
    *,
    committed: int,
) -> None:
    started = time.monotonic()
    try:
        driver.execute(statement.text)
    except driver.errors as exc:
        database_message = redact(str(exc).strip())
        kept = (
            f"; the {committed} statement(s) before it stay committed"
            if committed
            else ""
        )
        raise MigrationFailed(
            f"{statement.path}:{statement.line}: statement {statement.index} "
            f"failed: {database_message}{kept}",
            statement=statement,
            database_message=database_message,
            hint="fix the statement and run the migration again",
        ) from exc
    if on_statement is not None:
        on_statement(statement, time.monotonic() - started)


def _record(driver: _Driver, migration: Migration) -> None:
    _execute_bookkeeping(
        driver,
        migration,
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} ("
        "version text PRIMARY KEY, name text NOT NULL, "
        "checksum text NOT NULL, applied_at text NOT NULL)",
    )
    applied_at = datetime.now(UTC).isoformat(timespec="seconds")
    _execute_bookkeeping(
        driver,
        migration,
        f"INSERT INTO {VERSION_TABLE} (version, name, checksum, applied_at) "
        f"VALUES ({driver.placeholders(4)})",
        (migration.version, migration.name, migration.checksum, applied_at),
    )


def _execute_bookkeeping(
    driver: _Driver, migration: Migration, text: str, params: tuple[Any, ...] = ()
) -> None:
    try:
        driver.execute(text, params or None)
    except driver.errors as exc:
        raise MigrationError(
            f"{migration.path}: recording version {migration.version} in "
            f"{VERSION_TABLE} failed: {redact(str(exc).strip())}",
            hint=f"check that {VERSION_TABLE} has the columns version, name, "
            "checksum and applied_at",
        ) from exc


class _Driver:
    """The differences between psycopg 3 and sqlite3 that applying needs."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sqlite = isinstance(conn, sqlite3.Connection)
        if self.sqlite:
            self.errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        else:
            import psycopg

            self.errors = (psycopg.Error,)

    @classmethod
    def of(cls, conn: Any) -> _Driver:
        module = type(conn).__module__
        if isinstance(conn, sqlite3.Connection) or module.startswith("psycopg"):
            return cls(conn)
        raise MigrationError(
            f"unsupported database connection {type(conn).__name__}",
            hint="pass a psycopg 3 or sqlite3 connection",
        )

    def placeholders(self, count: int) -> str:
        return ", ".join(["?" if self.sqlite else "%s"] * count)

    def execute(self, text: str, params: tuple[Any, ...] | None = None) -> None:
        if self.sqlite:
            self.conn.execute(text, params or ())
        else:
            self.conn.execute(text, params)

    def query(self, text: str) -> list[tuple[Any, ...]]:
        if self.sqlite:
            return list(self.conn.execute(text).fetchall())
        idle = self._idle()
        rows = list(self.conn.execute(text).fetchall())
        if idle and not self.conn.autocommit:
            self.conn.rollback()
        return rows

    def table_exists(self, name: str) -> bool:
        if self.sqlite:
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
            return self.conn.execute(sql, (name,)).fetchone() is not None
        idle = self._idle()
        row = self.conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        if idle and not self.conn.autocommit:
            self.conn.rollback()
        return row[0] is not None

    def _idle(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status == TransactionStatus.IDLE

    def manual_transactions(self) -> _ManualTransactions:
        return _ManualTransactions(self)


class _ManualTransactions:
    """Put the connection in autocommit mode so that BEGIN/COMMIT are DAW's own.

    The previous mode is restored on exit. Raises MigrationError when the caller
    left a transaction open, because DAW would otherwise commit the caller's work.
    """

    def __init__(self, driver: _Driver) -> None:
        self.driver = driver
        self.previous: Any = None

    def __enter__(self) -> None:
        conn = self.driver.conn
        if self.driver.sqlite:
            if conn.in_transaction:
                raise _open_transaction_error()
            self.previous = conn.isolation_level
            conn.isolation_level = None
            return
        if not self.driver._idle():
            raise _open_transaction_error()
        self.previous = conn.autocommit
        conn.autocommit = True

    def __exit__(self, *exc_info: object) -> None:
        conn = self.driver.conn
        if self.driver.sqlite:
            conn.isolation_level = self.previous
        elif self.driver._idle():
            conn.autocommit = self.previous


def _open_transaction_error() -> MigrationError:
    return MigrationError(
        "the database connection has an open transaction",
        hint="commit or roll back before applying a migration",
    )


# Alembic projects

_REVISION = re.compile(
    r"^revision\s*(?::\s*[\w\[\], |]+)?=\s*['\"](?P<id>[^'\"]+)['\"]", re.MULTILINE
)
_RUNNING_UPGRADE = re.compile(r"^-- Running upgrade (?P<old>.*?) -> (?P<new>\S+)\s*$")
_CURRENT = re.compile(
    r"^(?P<id>[0-9A-Za-z_]+)"
    r"(?: \((?:head|mergepoint|branchpoint|effective head)\))*\s*$"
)
_ALEMBIC_BOOKKEEPING = re.compile(
    r"^\s*(?:CREATE\s+TABLE\s+alembic_version\b|INSERT\s+INTO\s+alembic_version\b"
    r"|UPDATE\s+alembic_version\b|DELETE\s+FROM\s+alembic_version\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Revision:
    id: str
    path: str
    checksum: str
    upgrade_line: int
    name: str


class AlembicSource:
    """An Alembic project, linted from ``alembic upgrade --sql`` and applied by Alembic.

    ``path`` is the project folder holding ``alembic.ini`` or the ini file itself.
    The URL reaches Alembic in two ways: the environment variable
    ``DATABASE_URL`` (also ``DAW_DATABASE_URL``) and ``-x url=URL``, the latter
    only for a URL without a password. The project's ``env.py`` must read one of
    them, because Alembic itself only reads ``sqlalchemy.url`` from the ini file.
    A libpq URL ``postgresql://`` is passed as ``postgresql+psycopg://`` so that
    SQLAlchemy uses psycopg 3.
    """

    def __init__(self, path: Path, *, python: str | None = None) -> None:
        self.ini = path / "alembic.ini" if path.is_dir() else path
        self.root = self.ini.parent
        self.python = python or sys.executable
        if not self.ini.is_file():
            raise MigrationError(
                f"{self.ini} does not exist",
                hint="pass the folder that contains alembic.ini",
            )

    def migrations(
        self,
        url: str | None = None,
        *,
        from_current: bool = True,
        timeout_s: float = DEFAULT_ALEMBIC_TIMEOUT_S,
    ) -> list[Migration]:
        """Return one Migration per revision that ``upgrade head`` would run.

        The statements come from Alembic's offline SQL for the dialect of ``url``
        (without ``url``, of ``sqlalchemy.url`` in the ini file). With ``url`` and
        ``from_current`` the range starts at the database's current revision, which
        ``alembic current`` reads online. Otherwise it starts at the base and no
        database is contacted. Each statement's
        ``path`` is the revision file and its ``line`` the line of ``def upgrade``,
        because the SQL is generated from Python code.

        Raises MigrationError when Alembic fails or its output names a revision
        that no file in the project defines.
        """
        start = []
        if url and from_current:
            start = self.current_revisions(url, timeout_s=timeout_s)
        if len(start) > 1:
            raise MigrationError(
                f"the database is at several Alembic heads: {', '.join(start)}",
                hint="merge the heads with `alembic merge` first",
            )
        target = f"{start[0]}:head" if start else "head"
        output = self._alembic(["upgrade", target, "--sql"], url, timeout_s).stdout
        return self._split_revisions(output)

    def current_revisions(
        self, url: str | None, *, timeout_s: float = DEFAULT_ALEMBIC_TIMEOUT_S
    ) -> list[str]:
        """Return the revisions recorded in the database's ``alembic_version``."""
        output = self._alembic(["current"], url, timeout_s).stdout
        revisions = []
        for line in output.splitlines():
            match = _CURRENT.match(line.strip())
            if match:
                revisions.append(match.group("id"))
        return sorted(revisions)

    def apply_url(
        self, url: str, *, timeout_s: float = DEFAULT_ALEMBIC_TIMEOUT_S
    ) -> None:
        """Run ``alembic upgrade head`` online against ``url``.

        Raises MigrationError with Alembic's error output, password removed, when
        the upgrade fails or does not finish within ``timeout_s`` seconds.
        """
        log.info("running alembic upgrade head on %s", redact(url))
        self._alembic(["upgrade", "head"], url, timeout_s)

    def _alembic(self, args: list[str], url: str | None, timeout_s: float) -> Any:
        command = [self.python, "-m", "alembic", "-c", str(self.ini)]
        env = {}
        if url:
            engine_url = sqlalchemy_url(url)
            env = {"DATABASE_URL": engine_url, "DAW_DATABASE_URL": engine_url}
            # A password on a command line shows in `ps` and in debug logs, so a
            # URL that has one reaches Alembic through the environment only.
            if urllib.parse.urlsplit(engine_url).password is None:
                command += ["-x", f"url={engine_url}"]
        command += args

        try:
            completed = run_tool(command, cwd=self.root, timeout_s=timeout_s, env=env)
        except ToolError as exc:
            raise MigrationError(redact(str(exc)), hint=_ALEMBIC_HINT) from exc
        if completed.returncode != 0:
            raise MigrationError(
                f"alembic {' '.join(args)} failed: {_alembic_error(completed)}",
                hint=_ALEMBIC_HINT,
            )
        return completed

    def _split_revisions(self, output: str) -> list[Migration]:
        revisions = self._revision_files()
        sections: list[tuple[str, list[str]]] = []
        for line in output.splitlines():
            marker = _RUNNING_UPGRADE.match(line)
            if marker:
                sections.append((marker.group("new"), []))
            elif sections:
                sections[-1][1].append(line)

        migrations = []
        for revision_id, lines in sections:
            revision = revisions.get(revision_id)
            if revision is None:
                raise MigrationError(
                    f"alembic output names revision {revision_id}, but no file in "
                    f"{self.root} defines it",
                    hint="check the script_location in alembic.ini",
                )
            migrations.append(_alembic_migration(revision, "\n".join(lines)))
        return migrations

    def _revision_files(self) -> dict[str, _Revision]:
        revisions = {}
        for file in sorted(self._script_location().rglob("*.py")):
            text = file.read_text(encoding="utf-8", errors="replace")
            match = _REVISION.search(text)
            if match is None or "def upgrade" not in text:
                continue
            before = text[: text.index("def upgrade")]
            relative = file.relative_to(self.root).as_posix()
            revisions[match.group("id")] = _Revision(
                id=match.group("id"),
                path=relative,
                checksum=hashlib.sha256(file.read_bytes()).hexdigest(),
                upgrade_line=before.count("\n") + 1,
                name=_revision_name(file.stem, match.group("id")),
            )
        return revisions

    def _script_location(self) -> Path:
        """Return the folder that ``script_location`` in the ini file names.

        NOTE: a package-resource location such as ``myapp:migrations`` is not
        resolved; such projects need a folder path in ``script_location``.
        """
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.ini, encoding="utf-8")
        location = parser.get("alembic", "script_location", fallback="").strip()
        if not location:
            raise MigrationError(
                f"{self.ini}: [alembic] script_location is missing",
                hint="set script_location to the folder with env.py and versions/",
            )
        folder = Path(location.replace("%(here)s", str(self.root)))
        folder = folder if folder.is_absolute() else self.root / folder
        if not folder.is_dir():
            raise MigrationError(
                f"{self.ini}: script_location {location} is not a folder",
                hint="set script_location to the folder with env.py and versions/",
            )
        return folder


_ALEMBIC_HINT = (
    "check that alembic is installed and that env.py reads the URL from "
    "DATABASE_URL or `-x url`"
)


def _alembic_error(completed: Any) -> str:
    lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-5:]) or completed.stdout.strip()[-2000:]
    return redact(tail)


def _revision_name(stem: str, revision_id: str) -> str:
    return stem.removeprefix(revision_id).lstrip("_") or stem


def _alembic_migration(revision: _Revision, sql: str) -> Migration:
    raw = split_statements(sql, revision.path)
    kept = [
        s
        for s in raw
        if not is_transaction_control(s.text) and not _ALEMBIC_BOOKKEEPING.match(s.text)
    ]
    statements = tuple(
        Statement(path=s.path, line=revision.upgrade_line, index=i, text=s.text)
        for i, s in enumerate(kept, start=1)
    )
    return Migration(
        version=revision.id,
        name=revision.name,
        path=revision.path,
        checksum=revision.checksum,
        statements=statements,
        transactional=not any(runs_outside_transaction(s.text) for s in statements),
        declared_row_changes=_declared_row_changes(sql, revision.path),
    )


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with a libpq scheme replaced by SQLAlchemy's psycopg 3 scheme."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in {"postgres", "postgresql"}:
        return urllib.parse.urlunsplit(parts._replace(scheme="postgresql+psycopg"))
    return url


# Detection


def load_source(path: Path) -> SqlFolderSource | AlembicSource:
    """Return the source at ``path``: Alembic when alembic.ini is there, else SQL.

    ``path`` may be an ``alembic.ini`` file, a folder holding one, or a folder of
    .sql migrations. Raises MigrationError for anything else.
    """
    if path.is_file() and path.suffix == ".ini":
        return AlembicSource(path)
    if path.is_dir() and (path / "alembic.ini").is_file():
        return AlembicSource(path)
    if path.is_dir() and any(item.suffix.lower() == ".sql" for item in path.iterdir()):
        return SqlFolderSource(path)
    raise MigrationError(
        f"{path} is not a migration source",
        hint="pass a folder of numbered .sql files (0001_name.sql) or an Alembic "
        "project folder with alembic.ini",
    )
