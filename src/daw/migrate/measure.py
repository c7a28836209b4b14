"""What a rehearsal on the fork measures: statement durations, locks and table sizes.

The lock sampler polls ``pg_locks`` from its own connection while the migration
runs. It records the relation locks the migration's session holds or waits for, but
only those that last at least about one poll interval (50 ms by default).
Durations and lock times are measured on the fork; production may differ with
its own load, cache state and hardware, so the report calls them estimates.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from daw.migrate.dburl import DatabaseUrl, connect_postgresql
from daw.models import normalise_snippet

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.05
FIRST_USER_OID = 16384
TEXT_LIMIT = 120

_LOCK_QUERY = """
SELECT COALESCE(n.nspname || '.' || c.relname, 'oid ' || l.relation::text),
       l.mode, l.granted, COALESCE(c.relkind::text, '')
FROM pg_locks l
LEFT JOIN pg_class c ON c.oid = l.relation
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation >= %(first_oid)s
  AND l.pid <> pg_backend_pid()
  AND (%(pid)s::int IS NULL OR l.pid = %(pid)s::int)
"""

_SIZE_QUERY = """
SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid),
       c.reltuples::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1
"""

# The effect of each table lock mode on other sessions (PostgreSQL 15 manual,
# "Explicit Locking", table-level lock modes).
LOCK_EFFECTS = {
    "AccessExclusiveLock": "blocks all reads and writes",
    "ExclusiveLock": "blocks writes and SELECT ... FOR UPDATE; plain reads continue",
    "ShareRowExclusiveLock": "blocks writes; reads continue",
    "ShareLock": "blocks writes; reads continue",
    "ShareUpdateExclusiveLock": "blocks schema changes and VACUUM; reads and "
    "writes continue",
    "RowExclusiveLock": "blocks only SHARE and stronger locks; reads and writes "
    "continue",
    "RowShareLock": "blocks only EXCLUSIVE and ACCESS EXCLUSIVE locks",
    "AccessShareLock": "blocks only ACCESS EXCLUSIVE locks",
}
BLOCKING_MODES = frozenset(
    {"AccessExclusiveLock", "ExclusiveLock", "ShareRowExclusiveLock", "ShareLock"}
)


@dataclass(frozen=True)
class StatementTiming:
    """One statement's wall-clock duration in seconds, with where it came from."""

    path: str
    line: int
    index: int
    text: str
    seconds: float


@dataclass
class StatementRecorder:
    """The ``on_statement`` callback for ``sources.apply``: it keeps every timing."""

    timings: list[StatementTiming] = field(default_factory=list)

    def __call__(self, statement: Any, seconds: float) -> None:
        text = normalise_snippet(statement.text)
        if len(text) > TEXT_LIMIT:
            text = text[: TEXT_LIMIT - 3] + "..."
        self.timings.append(
            StatementTiming(
                statement.path, statement.line, statement.index, text, seconds
            )
        )


@dataclass
class LockObservation:
    """A (relation, mode) pair the sampler saw, with times in seconds from its start.

    ``sampled_s`` adds up the intervals between polls that saw the lock, an
    estimate of how long it was held (or waited for, when ``granted`` is false).
    """

    relation: str
    mode: str
    relkind: str
    granted: bool
    first_seen_s: float
    last_seen_s: float
    samples: int = 1
    sampled_s: float = 0.0


class LockSampler:
    """Sample relation locks on ``url``'s database from a background thread.

    ``pid`` restricts sampling to one backend (the session applying the
    migration); None samples every other session. Use as a context manager, or
    call ``start`` and ``stop``. ``error`` is the sampler's failure, if any.
    """

    def __init__(
        self,
        url: DatabaseUrl,
        *,
        pid: int | None = None,
        interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self.url = url
        self.pid = pid
        self.interval_s = interval_s
        self.error: str | None = None
        self.polls = 0
        self._seen: dict[tuple[str, str, bool], LockObservation] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="lock-sampler", daemon=True
        )

    def __enter__(self) -> LockSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start sampling and return once the sampler's connection is open."""
        self._thread.start()
        self._ready.wait(timeout=30)

    def stop(self) -> list[LockObservation]:
        """Stop sampling and return the observations sorted by relation and mode."""
        self._stop.set()
        self._thread.join(timeout=30)
        return self.observations()

    def observations(self) -> list[LockObservation]:
        return sorted(
            self._seen.values(), key=lambda o: (o.relation, o.mode, o.granted)
        )

    def _run(self) -> None:
        try:
            with connect_postgresql(self.url, autocommit=True) as conn:
                self._ready.set()
                self._loop(conn)
        except Exception as exc:  # noqa: BLE001 - reported in the result, fail closed
            self.error = f"lock sampling failed: {exc}"
            log.error("lock sampler on %s failed: %s", self.url.redacted(), exc)
        finally:
            self._ready.set()

    def _loop(self, conn) -> None:
        started = time.monotonic()
        previous = started
        while True:
            now = time.monotonic()
            rows = conn.execute(
                _LOCK_QUERY, {"first_oid": FIRST_USER_OID, "pid": self.pid}
            ).fetchall()
            self.polls += 1
            self._record(rows, now - started, now - previous)
            previous = now
            if self._stop.wait(self.interval_s):
                return

    def _record(self, rows: list[tuple], at_s: float, elapsed_s: float) -> None:
        for relation, mode, granted, relkind in rows:
            key = (relation, mode, bool(granted))
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = LockObservation(
                    relation, mode, relkind, bool(granted), at_s, at_s, 1, 0.0
                )
                continue
            seen.last_seen_s = at_s
            seen.samples += 1
            seen.sampled_s += elapsed_s


@dataclass(frozen=True)
class TableSize:
    """A table's total size in bytes (with indexes and TOAST) and its row count.

    ``rows`` is the planner's estimate (``pg_class.reltuples`` after ANALYZE) for
    PostgreSQL and an exact ``count(*)`` for SQLite; None when unknown.
    """

    bytes: int | None
    rows: int | None


def table_sizes(conn, *, analyze: bool = False) -> dict[str, TableSize]:
    """Return the size of every user table on a PostgreSQL connection.

    Keys are ``schema.table``.

    ``analyze`` runs ANALYZE first so the row estimates are current; use it on
    forks only, never on production.
    """
    if analyze:
        conn.execute("ANALYZE")
    rows = conn.execute(_SIZE_QUERY).fetchall()
    return {
        name: TableSize(int(size), int(tuples) if tuples >= 0 else None)
        for name, size, tuples in rows
    }


def sqlite_table_sizes(conn: sqlite3.Connection) -> dict[str, TableSize]:
    """Return the row count and, where SQLite has the dbstat table, bytes per table."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    sizes = _sqlite_bytes(conn)
    result = {}
    for name in names:
        quoted = '"' + name.replace('"', '""') + '"'
        count = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]  # noqa: S608
        result[name] = TableSize(sizes.get(name), int(count))
    return result


def _sqlite_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    try:
        rows = conn.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
        ).fetchall()
    except sqlite3.Error:
        return {}
    return {name: int(size) for name, size in rows}


def predict_impact(
    timings: list[StatementTiming],
    locks: list[LockObservation],
    before: dict[str, TableSize],
    after: dict[str, TableSize],
    *,
    interval_s: float = POLL_INTERVAL_S,
) -> dict[str, Any]:
    """Return the impact report: per table the locks, their hold time and the growth.

    Only tables that existed before the migration are predicted for production;
    locks on objects the migration created are listed under ``new_objects``.
    """
    tables: dict[str, dict[str, Any]] = {}
    new_objects = []
    for lock in locks:
        if lock.relation not in before:
            new_objects.append(_lock_entry(lock, interval_s))
            continue
        entry = tables.setdefault(lock.relation, {"locks": []})
        entry["locks"].append(_lock_entry(lock, interval_s))
    for name in sorted(set(before) | set(after)):
        entry = tables.setdefault(name, {"locks": []})
        entry.update(_growth(before.get(name), after.get(name)))
    predictions = [
        _prediction(name, lock)
        for name, entry in sorted(tables.items())
        for lock in entry["locks"]
        if lock["granted"]
    ]
    return {
        "statements": [asdict(timing) for timing in timings],
        "total_statement_s": round(sum(t.seconds for t in timings), 4),
        "tables": dict(sorted(tables.items())),
        "new_objects": sorted(new_objects, key=lambda e: (e["relation"], e["mode"])),
        "predictions": predictions,
        "sample_interval_s": interval_s,
    }


def _lock_entry(lock: LockObservation, interval_s: float) -> dict[str, Any]:
    held = max(lock.sampled_s, interval_s) if lock.samples else 0.0
    return {
        "relation": lock.relation,
        "mode": lock.mode,
        "granted": lock.granted,
        "samples": lock.samples,
        "first_seen_s": round(lock.first_seen_s, 3),
        "last_seen_s": round(lock.last_seen_s, 3),
        "estimated_hold_s": round(held, 3),
        "effect": LOCK_EFFECTS.get(lock.mode, "see the PostgreSQL lock table"),
        "blocks_traffic": lock.mode in BLOCKING_MODES,
    }


def _growth(before: TableSize | None, after: TableSize | None) -> dict[str, Any]:
    bytes_before = before.bytes if before else None
    bytes_after = after.bytes if after else None
    growth = None
    if bytes_before is not None and bytes_after is not None:
        growth = bytes_after - bytes_before
    return {
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
        "bytes_growth": growth,
        "rows_before": before.rows if before else None,
        "rows_after": after.rows if after else None,
        "created": before is None,
        "dropped": after is None,
    }


def _prediction(table: str, lock: dict[str, Any]) -> str:
    return (
        f"{table}: {lock['mode']} held about {lock['estimated_hold_s']:.2f} s on the "
        f"fork; in production this {lock['effect']} for about as long (an estimate: "
        "load and hardware differ)"
    )
