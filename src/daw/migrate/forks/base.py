"""The fork contract: what a strategy creates and reports, and the errors it raises."""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol

from daw.migrate.dburl import DatabaseUrl
from daw.migrate.errors import MigrationError

FORK_PREFIX = "daw_fork_"


class ForkError(MigrationError):
    """A fork could not be created, started, listed or discarded."""


class StrategyUnavailable(ForkError):
    """A strategy cannot fork this source; the message gives the reason and the fix."""


@dataclass
class Fork:
    """A throw-away copy of a source database.

    ``url`` points at the fork and may contain the source's password, so it is
    never printed (use ``url.redacted()``). ``seconds`` is the wall-clock time the
    fork took to create and ``bytes_copied`` the bytes written for it (for
    copy-on-write clones, the logical size of the cloned files, which share their
    blocks with the source). ``details`` contains strategy-specific values that
    ``discard`` needs, such as the data folder and server port; they are stored in
    the state file and contain no secret.
    """

    strategy: str
    run_id: str
    name: str
    url: DatabaseUrl
    source: str
    seconds: float = 0.0
    bytes_copied: int = 0
    created_at: str = ""
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Return the fork as JSON data without any password."""
        return {
            "strategy": self.strategy,
            "run_id": self.run_id,
            "name": self.name,
            "url": self.url.redacted(),
            "source": self.source,
            "seconds": round(self.seconds, 4),
            "bytes_copied": self.bytes_copied,
            "created_at": self.created_at,
            "pid": self.pid,
            "host": self.host,
            "details": dict(sorted(self.details.items())),
        }


class ForkStrategy(Protocol):
    """One way to fork a database. Implementations register in ``forks.registry``.

    ``unavailable`` returns None when the strategy can fork ``source`` now, or a
    sentence saying why not and what to do. ``create`` raises ForkError (or
    StrategyUnavailable) and leaves nothing behind when it fails. ``discard``
    removes everything the fork created and succeeds when it is already gone.
    """

    name: str
    kinds: tuple[str, ...]

    def unavailable(self, source: DatabaseUrl) -> str | None: ...

    def create(self, source: DatabaseUrl, run_id: str, state: Any) -> Fork: ...

    def discard(self, fork: Fork) -> None: ...


def fork_name(run_id: str) -> str:
    """Return the fork's name: the prefix plus the run id in lower case.

    A ``daw.check.new_run_id`` id such as ``20261204T150102-3fa9c2`` becomes
    ``daw_fork_20261204t150102_3fa9c2``, a PostgreSQL identifier that needs no
    quoting. Names are cut at 63 bytes, PostgreSQL's identifier limit.
    """
    cleaned = "".join(ch if ch.isalnum() else "_" for ch in run_id.lower())
    return f"{FORK_PREFIX}{cleaned}"[:63]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def pid_alive(pid: int) -> bool:
    """Return whether a process with ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] != "Z"
