"""The fork state folder: one JSON file per live fork, so a crashed run's fork is found.

The folder is ``$DAW_STATE_DIR`` when set, else ``.daw/forks`` under the git
repository that contains the current folder, else under the current folder.
State files hold no password: the URL is stored without it, so discarding a
crashed run's fork on a server that needs one relies on ``PGPASSWORD`` or
``~/.pgpass``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import replace
from pathlib import Path

from daw.migrate.dburl import parse_url
from daw.migrate.forks.base import Fork, ForkError

log = logging.getLogger(__name__)

STATE_ENV = "DAW_STATE_DIR"


def default_state_dir(cwd: Path | None = None) -> Path:
    """Return $DAW_STATE_DIR, else ``.daw/forks`` in the repository (or cwd)."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).resolve()
    start = (cwd or Path.cwd()).resolve()
    return _repo_root(start) / ".daw" / "forks"


def _repo_root(start: Path) -> Path:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argument list
            ["git", "rev-parse", "--show-toplevel"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return start
    if proc.returncode != 0 or not proc.stdout.strip():
        return start
    return Path(proc.stdout.strip())


class ForkState:
    """The state files in ``folder``, one ``<fork name>.json`` per fork."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_of(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def record(self, fork: Fork) -> None:
        """Write or replace the fork's state file (atomically, through a rename)."""
        data = fork.summary()
        data["url"] = replace(fork.url, password=None).render()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.path_of(fork.name)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            temporary.replace(path)
        except OSError as exc:
            raise ForkError(
                f"cannot write the fork state file in {self.folder}: {exc.strerror}",
                hint=f"make the folder writable or set {STATE_ENV}",
            ) from exc

    def remove(self, name: str) -> None:
        self.path_of(name).unlink(missing_ok=True)

    def load_all(self) -> list[Fork]:
        """Return every recorded fork, sorted by name; unreadable files are skipped."""
        if not self.folder.is_dir():
            return []
        forks = []
        for path in sorted(self.folder.glob("*.json")):
            fork = _load(path)
            if fork is not None:
                forks.append(fork)
        return forks


def _load(path: Path) -> Fork | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Fork(
            strategy=data["strategy"],
            run_id=data["run_id"],
            name=data["name"],
            url=parse_url(data["url"]),
            source=data["source"],
            seconds=float(data.get("seconds", 0.0)),
            bytes_copied=int(data.get("bytes_copied", 0)),
            created_at=data.get("created_at", ""),
            pid=int(data.get("pid", 0)),
            host=data.get("host", ""),
            details=dict(data.get("details", {})),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("skipping unreadable fork state file %s: %s", path, exc)
        return None
