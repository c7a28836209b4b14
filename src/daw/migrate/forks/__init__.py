"""Fork strategies, the registry that chooses one, and the listing and cleanup of forks.

Strategies for PostgreSQL, in the order automatic choice tries them:
``snapshot`` (copy-on-write clone of the data folder, needs a local reflink
filesystem), ``template`` (CREATE DATABASE ... TEMPLATE, needs no other session
on the source) and ``basebackup`` (pg_basebackup plus a new server, needs a
replication connection). For SQLite: ``sqlite-reflink``, then ``sqlite-backup``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from daw.errors import UsageError
from daw.migrate.dburl import DatabaseUrl, DatabaseUrlError
from daw.migrate.forks.base import (
    Fork,
    ForkError,
    ForkStrategy,
    StrategyUnavailable,
    pid_alive,
)
from daw.migrate.forks.basebackup import BasebackupStrategy
from daw.migrate.forks.snapshot import SnapshotStrategy
from daw.migrate.forks.sqlite import SqliteBackupStrategy, SqliteReflinkStrategy
from daw.migrate.forks.state import ForkState, default_state_dir
from daw.migrate.forks.template import (
    TemplateStrategy,
    drop_fork_database,
    list_fork_databases,
)

log = logging.getLogger(__name__)

__all__ = [
    "STRATEGIES",
    "Fork",
    "ForkError",
    "ForkListing",
    "ForkState",
    "ForkStrategy",
    "StrategyChoice",
    "StrategyUnavailable",
    "choose_strategy",
    "cleanup",
    "default_state_dir",
    "discard_fork",
    "get_strategy",
    "list_forks",
]

STRATEGIES: dict[str, Callable[[], ForkStrategy]] = {
    "snapshot": SnapshotStrategy,
    "template": TemplateStrategy,
    "basebackup": BasebackupStrategy,
    "sqlite-reflink": SqliteReflinkStrategy,
    "sqlite-backup": SqliteBackupStrategy,
}


@dataclass(frozen=True)
class StrategyChoice:
    """The chosen strategy and, per strategy tried, why it was not usable."""

    strategy: ForkStrategy | None
    rejected: dict[str, str]

    def describe(self) -> str:
        lines = [f"{name}: {reason}" for name, reason in self.rejected.items()]
        return "; ".join(lines)


def get_strategy(name: str) -> ForkStrategy:
    """Return the strategy called ``name``; raises UsageError for an unknown name."""
    if name not in STRATEGIES:
        raise UsageError(
            f"unknown fork strategy {name!r}",
            hint=f"use one of: {', '.join(sorted(STRATEGIES))}",
        )
    return STRATEGIES[name]()


def choose_strategy(source: DatabaseUrl, override: str | None = None) -> StrategyChoice:
    """Return the first strategy that can fork ``source`` now, or None with the reasons.

    With ``override`` only that strategy is considered; it must support the
    source's kind (UsageError otherwise).
    """
    if override is not None:
        strategy = get_strategy(override)
        if source.kind not in strategy.kinds:
            raise UsageError(
                f"the {override} strategy cannot fork a {source.kind} database",
                hint="choose a strategy for this kind of database, or leave "
                "--strategy out",
            )
        candidates = [strategy]
    else:
        candidates = [
            factory() for factory in STRATEGIES.values() if source.kind in factory.kinds
        ]
    rejected: dict[str, str] = {}
    for strategy in candidates:
        reason = _unavailable(strategy, source)
        if reason is None:
            return StrategyChoice(strategy, rejected)
        rejected[strategy.name] = reason
    return StrategyChoice(None, rejected)


def _unavailable(strategy: ForkStrategy, source: DatabaseUrl) -> str | None:
    try:
        return strategy.unavailable(source)
    except DatabaseUrlError:
        raise
    except ForkError as exc:
        return exc.message


def discard_fork(fork: Fork, state: ForkState) -> None:
    """Remove ``fork`` with its strategy and delete its state file."""
    get_strategy(fork.strategy).discard(fork)
    state.remove(fork.name)


@dataclass(frozen=True)
class ForkListing:
    """One fork found in the state folder or on a server.

    ``orphan`` means the process that created it is gone, so no run will discard
    it. ``found_by`` is ``state`` or ``server``.
    """

    name: str
    strategy: str
    run_id: str
    pid: int
    orphan: bool
    source: str
    location: str
    created_at: str
    found_by: str
    fork: Fork | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "strategy": self.strategy,
            "run_id": self.run_id,
            "pid": self.pid,
            "orphan": self.orphan,
            "source": self.source,
            "location": self.location,
            "created_at": self.created_at,
            "found_by": self.found_by,
        }


def list_forks(
    state: ForkState, servers: Sequence[DatabaseUrl] = ()
) -> list[ForkListing]:
    """Return the forks in ``state`` and the ``daw_fork_`` databases on ``servers``.

    A database found on a server and also recorded in ``state`` is listed once.
    """
    listings = {fork.name: _from_state(fork) for fork in state.load_all()}
    for server in servers:
        if server.kind != "postgresql":
            continue
        for found in list_fork_databases(server):
            if found["name"] not in listings:
                listings[found["name"]] = _from_server(server, found)
    return [listings[name] for name in sorted(listings)]


def _is_orphan(pid: int, host: str) -> bool:
    if host and host != socket.gethostname():
        return False
    return not pid_alive(pid)


def _from_state(fork: Fork) -> ForkListing:
    location = fork.url.redacted()
    return ForkListing(
        name=fork.name,
        strategy=fork.strategy,
        run_id=fork.run_id,
        pid=fork.pid,
        orphan=_is_orphan(fork.pid, fork.host),
        source=fork.source,
        location=location,
        created_at=fork.created_at,
        found_by="state",
        fork=fork,
    )


def _from_server(server: DatabaseUrl, found: dict[str, Any]) -> ForkListing:
    label = found["label"]
    pid = int(label.get("pid", 0) or 0)
    labelled = bool(label)
    return ForkListing(
        name=found["name"],
        strategy="template",
        run_id=str(label.get("run_id", "")),
        pid=pid,
        orphan=labelled and _is_orphan(pid, str(label.get("host", ""))),
        source=str(label.get("source", "")),
        location=server.with_database(found["name"]).redacted(),
        created_at=str(label.get("created_at", "")),
        found_by="server",
        fork=Fork(
            strategy="template",
            run_id=str(label.get("run_id", "")),
            name=found["name"],
            url=server.with_database(found["name"]),
            source=str(label.get("source", "")),
        ),
    )


def cleanup(
    state: ForkState,
    servers: Sequence[DatabaseUrl] = (),
    *,
    orphans_only: bool = True,
) -> list[ForkListing]:
    """Discard forks and return those removed.

    With ``orphans_only`` only forks whose creating process is gone are removed;
    otherwise every fork found, including those of runs still going. An
    unlabelled ``daw_fork_`` database is removed only with ``orphans_only=False``.
    A fork that cannot be removed raises ForkError after the others were tried.
    """
    removed, failures = [], []
    for listing in list_forks(state, servers):
        if orphans_only and not listing.orphan:
            continue
        try:
            _discard_listing(listing, state)
        except (ForkError, DatabaseUrlError) as exc:
            log.error("cannot discard fork %s: %s", listing.name, exc.message)
            failures.append(f"{listing.name}: {exc.message}")
            continue
        removed.append(listing)
    if failures:
        raise ForkError(
            f"{len(failures)} forks could not be discarded: {'; '.join(failures)}",
            hint="fix the cause and run `daw migrate cleanup` again",
        )
    return removed


def _discard_listing(listing: ForkListing, state: ForkState) -> None:
    assert listing.fork is not None
    if listing.found_by == "server":
        drop_fork_database(listing.fork.url, listing.name)
        return
    discard_fork(listing.fork, state)
    log.info("discarded fork %s (%s)", listing.name, listing.strategy)
