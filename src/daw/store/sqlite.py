"""The embedded run store: one SQLite file holding every run record as JSON.

The file uses WAL journal mode and a busy timeout, so several daw processes on
one machine can save runs at the same time. The schema version is kept in
``PRAGMA user_version`` and older files are migrated when opened.
"""

from __future__ import annotations

import builtins
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from daw.errors import StoreError
from daw.run import RunRecord

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MIN_PREFIX = 6
BUSY_TIMEOUT_S = 30.0
MAX_CANDIDATES = 5

# Statements that take a store from the previous schema version to each version.
# A new version adds an entry here, and files of older versions are migrated on open.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            repo TEXT NOT NULL,
            "commit" TEXT,
            stage TEXT NOT NULL,
            environment TEXT NOT NULL,
            status TEXT NOT NULL,
            policy_digest TEXT NOT NULL,
            record_json TEXT NOT NULL
        )
        """,
        "CREATE INDEX runs_by_time ON runs (created_at, run_id)",
        "CREATE INDEX runs_by_repo_time ON runs (repo, created_at, run_id)",
    ),
}

_SUMMARY_COLUMNS = (
    'run_id, created_at, repo, "commit", stage, environment, status, policy_digest'
)


class RunSummary(BaseModel):
    """The columns of one stored run that a listing shows, without the record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    created_at: str
    repo: str
    commit: str | None
    stage: str
    environment: str
    status: str
    policy_digest: str


class RunStore:
    """Run records in the SQLite file at ``path``, created with its folders if missing.

    Every method opens its own connection, so one RunStore may be used from
    several threads. Raises StoreError when the file is not a run store, was
    written by a newer DAW, is locked for longer than ``timeout_s`` seconds or
    cannot be opened.
    """

    def __init__(self, path: Path, *, timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._create_folder()
        with self._connect() as conn:
            self._enable_wal(conn)
            self._migrate(conn)

    def save(self, record: RunRecord) -> None:
        """Store ``record`` in one transaction.

        Saving the same record twice is a no-op. Raises StoreError when a
        different record with the same run id is already stored.
        """
        text = record.model_dump_json()
        with self._connect() as conn, self._transaction(conn):
            row = conn.execute(
                "SELECT record_json FROM runs WHERE run_id = ?", (record.run_id,)
            ).fetchone()
            if row is not None and row[0] != text:
                raise StoreError(
                    f"run {record.run_id} is already stored in {self.path}"
                    " with different content",
                    hint="give the new run its own run id",
                )
            if row is None:
                conn.execute(
                    f"INSERT INTO runs ({_SUMMARY_COLUMNS}, record_json)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*_summary_values(record), text),
                )
        logger.debug("saved run %s to %s", record.run_id, self.path)

    def get(self, run_id: str) -> RunRecord:
        """Return the run whose id is ``run_id`` or starts with it.

        A prefix must have at least MIN_PREFIX characters. Raises StoreError when
        no run matches, when the prefix matches several runs, or when the stored
        record cannot be read by this version of DAW.
        """
        with self._connect() as conn:
            row = conn.execute(
                "SELECT run_id, record_json FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                row = self._find_prefix(conn, run_id)
        return self._parse(row[0], row[1])

    def list(
        self, limit: int = 20, repo: str | None = None
    ) -> builtins.list[RunSummary]:
        """Return up to ``limit`` runs, newest first, only those of ``repo`` if given.

        Runs with the same ``created_at`` are ordered by run id, descending.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        query = f"SELECT {_SUMMARY_COLUMNS} FROM runs"
        params: tuple[object, ...] = ()
        if repo is not None:
            query += " WHERE repo = ?"
            params = (repo,)
        query += " ORDER BY created_at DESC, run_id DESC LIMIT ?"
        with self._connect() as conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
        return [_summary(row) for row in rows]

    def _create_folder(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder {folder} for the run store: {exc.strerror}",
                hint="choose a store path in a writable folder",
            ) from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """Open an autocommit connection and turn SQLite errors into StoreError."""
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout_s, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        finally:
            conn.close()

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
        """Run the block in a write transaction that is rolled back on any error."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return StoreError(
                f"{self.path} is not a valid run store ({text})",
                hint=f"move {self.path} away; DAW then creates a new store there",
            )
        if "locked" in text or "busy" in text:
            return StoreError(
                f"the run store {self.path} stayed locked by another process"
                f" for {self.timeout_s:g} s",
                hint="retry when the other daw process has finished",
            )
        if "unable to open" in text:
            return StoreError(
                f"cannot open the run store {self.path} ({text})",
                hint="check that the path is a file in a writable folder",
            )
        return StoreError(f"the run store {self.path} failed: {text}")

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            # NOTE: without WAL, a reader and a writer block each other, so
            # concurrent daw processes wait on the busy timeout more often.
            logger.warning(
                "run store %s uses journal mode %s, not WAL", self.path, mode
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        if _user_version(conn) == SCHEMA_VERSION:
            return
        with self._transaction(conn):
            version = _user_version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the run store {self.path} has schema version {version}, but"
                    f" this DAW reads up to version {SCHEMA_VERSION}",
                    hint="upgrade DAW, or move the file away to start a new store",
                )
            if version == 0:
                self._check_empty(conn)
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
                logger.info("migrated run store %s to schema %d", self.path, step)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_empty(self, conn: sqlite3.Connection) -> None:
        """Raise StoreError when a file without a DAW schema already has tables."""
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        if rows:
            names = ", ".join(row[0] for row in rows)
            raise StoreError(
                f"{self.path} is an SQLite database but not a DAW run store"
                f" (it has the tables {names})",
                hint=f"move {self.path} away, or choose another store path",
            )

    def _find_prefix(self, conn: sqlite3.Connection, prefix: str) -> tuple[str, str]:
        if len(prefix) < MIN_PREFIX:
            raise StoreError(
                f"no run with id {prefix!r} in {self.path}",
                hint=f"give the full run id or at least {MIN_PREFIX} of its"
                " first characters",
            )
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ?"
                " ORDER BY run_id LIMIT ?",
                (len(prefix), prefix, MAX_CANDIDATES + 1),
            )
        ]
        if not ids:
            raise StoreError(
                f"no run with id or id prefix {prefix!r} in {self.path}",
                hint="run `daw runs list` to find the id",
            )
        if len(ids) > 1:
            listed = ", ".join(ids[:MAX_CANDIDATES])
            more = ", ..." if len(ids) > MAX_CANDIDATES else ""
            raise StoreError(
                f"run id prefix {prefix!r} matches several runs: {listed}{more}",
                hint="give more characters of the run id",
            )
        row = conn.execute(
            "SELECT run_id, record_json FROM runs WHERE run_id = ?", (ids[0],)
        ).fetchone()
        return row[0], row[1]

    def _parse(self, run_id: str, text: str) -> RunRecord:
        try:
            return RunRecord.model_validate_json(text)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            raise StoreError(
                f"run {run_id} in {self.path} cannot be read by this DAW version:"
                f" {where}: {error['msg']}",
                hint="read it with the DAW version that wrote it",
            ) from exc


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _summary_values(record: RunRecord) -> tuple[str | None, ...]:
    return (
        record.run_id,
        record.created_at,
        record.repo,
        record.commit,
        record.stage,
        record.environment,
        record.verdict.status.value,
        record.verdict.policy_digest,
    )


def _summary(row: tuple[str | None, ...]) -> RunSummary:
    names = RunSummary.model_fields
    return RunSummary.model_validate(dict(zip(names, row, strict=True)))
