"""SQLite forks: the online backup API, or a reflink copy where the filesystem has one.

``sqlite-backup`` copies the database page by page with
``sqlite3.Connection.backup``, which gives a consistent copy while other
connections read and write. ``sqlite-reflink`` clones the file (and its ``-wal``
file) with ``cp --reflink=always`` while holding ``BEGIN IMMEDIATE``, which stops
other writers for the few milliseconds the clone takes, so the copy is
consistent too. Forks are written to a ``daw_fork_<run>`` folder next to the
source, so a reflink clone stays on the source's filesystem.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from daw.migrate.dburl import DatabaseUrl
from daw.migrate.forks.base import Fork, ForkError, fork_name, utc_now
from daw.migrate.forks.reflink import reflink_problem
from daw.process import ToolError, run_tool

log = logging.getLogger(__name__)

COPY_TIMEOUT_S = 600.0
BUSY_TIMEOUT_S = 30.0


class _SqliteStrategy:
    name = ""
    kinds = ("sqlite",)

    def unavailable(self, source: DatabaseUrl) -> str | None:
        if not source.sqlite_path.is_file():
            return f"the SQLite database {source.sqlite_path} does not exist"
        return None

    def create(self, source: DatabaseUrl, run_id: str, state: Any) -> Fork:
        problem = self.unavailable(source)
        if problem:
            raise ForkError(problem)
        name = fork_name(run_id)
        folder = source.sqlite_path.parent / name
        target = folder / source.sqlite_path.name
        fork = Fork(
            strategy=self.name,
            run_id=run_id,
            name=name,
            url=DatabaseUrl(kind="sqlite", path=target),
            source=source.redacted(),
            created_at=utc_now(),
            details={"folder": str(folder), "path": str(target)},
        )
        state.record(fork)
        started = time.monotonic()
        try:
            folder.mkdir(mode=0o700)
            self._copy(source.sqlite_path, target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            state.remove(name)
            raise
        fork.seconds = time.monotonic() - started
        fork.bytes_copied = sum(p.stat().st_size for p in folder.iterdir())
        state.record(fork)
        return fork

    def discard(self, fork: Fork) -> None:
        folder = Path(fork.details.get("folder", ""))
        if folder.name.startswith("daw_fork_") and folder.exists():
            shutil.rmtree(folder)
        log.info("removed SQLite fork %s", fork.name)

    def _copy(self, source: Path, target: Path) -> None:
        raise NotImplementedError


class SqliteBackupStrategy(_SqliteStrategy):
    """Fork a SQLite file with the online backup API."""

    name = "sqlite-backup"

    def _copy(self, source: Path, target: Path) -> None:
        reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        writer = sqlite3.connect(target)
        try:
            reader.backup(writer)
        except sqlite3.Error as exc:
            raise ForkError(f"the SQLite backup of {source} failed: {exc}") from exc
        finally:
            writer.close()
            reader.close()


class SqliteReflinkStrategy(_SqliteStrategy):
    """Fork a SQLite file with a copy-on-write clone under a write lock."""

    name = "sqlite-reflink"

    def unavailable(self, source: DatabaseUrl) -> str | None:
        problem = super().unavailable(source)
        return problem or reflink_problem(source.sqlite_path.parent)

    def _copy(self, source: Path, target: Path) -> None:
        lock = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            for suffix in ("", "-wal"):
                original = Path(f"{source}{suffix}")
                if original.exists():
                    _reflink(original, Path(f"{target}{suffix}"))
            lock.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise ForkError(f"cannot lock {source} for the clone: {exc}") from exc
        finally:
            lock.close()


def _reflink(source: Path, target: Path) -> None:
    try:
        completed = run_tool(
            ["cp", "--reflink=always", str(source), str(target)],
            cwd=target.parent,
            timeout_s=COPY_TIMEOUT_S,
        )
    except ToolError as exc:
        raise ForkError(f"the reflink copy of {source} failed: {exc}") from exc
    if completed.returncode != 0:
        raise ForkError(f"the reflink copy of {source} failed: {completed.describe()}")
