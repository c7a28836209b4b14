"""Ephemeral PostgreSQL servers for cluster forks (basebackup and snapshot).

A cluster fork is a copy of the source server's data folder, started as a new
server that listens on 127.0.0.1 only, on a free port, with its unix socket in
the fork's own folder. Archiving and replication settings copied from the
source are switched off on the command line, so the fork never writes into the
source's WAL archive or connects to its primary.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daw.migrate.dburl import DatabaseUrl
from daw.migrate.forks.base import Fork, ForkError, fork_name, utc_now
from daw.process import ToolError, run_tool

log = logging.getLogger(__name__)

BINDIR_ENV = "DAW_PG_BINDIR"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
SERVICE_USER = "postgres"

# Written only when the copied data folder has no configuration of its own, as on
# Debian, where postgresql.conf and pg_hba.conf live under /etc/postgresql.
_MINIMAL_CONF = "# written by daw for a throw-away fork\n"


def postgres_bindir(major: int) -> Path:
    """Return the folder of the server binaries for PostgreSQL ``major``.

    Order: $DAW_PG_BINDIR, /usr/lib/postgresql/MAJOR/bin (Debian), then the
    folder of ``pg_ctl`` on PATH. Raises ForkError when none has pg_ctl.
    """
    candidates = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(Path(os.environ[BINDIR_ENV]))
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).parent)
    for folder in candidates:
        if (folder / "pg_ctl").is_file():
            return folder
    raise ForkError(
        f"the PostgreSQL {major} server binaries (pg_ctl, postgres, pg_basebackup) "
        "were not found",
        hint=f"install the postgresql-{major} package or set {BINDIR_ENV}",
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_service_user(args: list[str]) -> list[str]:
    """Return ``args`` run as the postgres OS user when DAW is root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVICE_USER, "--", *args]
    return args


def hand_to_service_user(folder: Path) -> None:
    """Give ``folder`` and its contents to the postgres OS user when running as root."""
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(SERVICE_USER)
    os.lchown(folder, account.pw_uid, account.pw_gid)
    for root, dirs, files in os.walk(folder):
        for entry in (*dirs, *files):
            os.lchown(os.path.join(root, entry), account.pw_uid, account.pw_gid)


def prepare_config(data_dir: Path, *, password_auth: bool) -> None:
    """Write postgresql.conf, pg_hba.conf and pg_ident.conf where the copy has none.

    The written pg_hba.conf trusts the unix socket, which lives in the fork's
    0700 folder, and on 127.0.0.1 requires a password (``md5``, which also
    accepts SCRAM-stored ones) when the source URL had one, else trusts.
    """
    if not (data_dir / "postgresql.conf").exists():
        (data_dir / "postgresql.conf").write_text(_MINIMAL_CONF)
    if not (data_dir / "pg_ident.conf").exists():
        (data_dir / "pg_ident.conf").write_text(_MINIMAL_CONF)
    if not (data_dir / "pg_hba.conf").exists():
        method = "md5" if password_auth else "trust"
        (data_dir / "pg_hba.conf").write_text(
            _MINIMAL_CONF
            + "local all all trust\n"
            + f"host all all 127.0.0.1/32 {method}\n"
        )


def start_server(data_dir: Path, *, port: int, socket_dir: Path, bindir: Path) -> int:
    """Start a server on ``data_dir`` at 127.0.0.1:``port`` and return its pid.

    Raises ForkError with the end of the server log when it does not start.
    """
    log_file = socket_dir / "server.log"
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(socket_dir),
        "archive_mode": "off",
        "archive_command": "",
        "restore_command": "",
        "primary_conninfo": "",
        "logging_collector": "off",
        "cluster_name": "daw_fork",
    }
    options = " ".join(
        f"-c {key}={shlex.quote(value)}" for key, value in settings.items()
    )
    args = [str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file)]
    args += ["-w", "-t", str(int(START_TIMEOUT_S)), "-o", options, "start"]
    completed = _run(as_service_user(args), socket_dir, START_TIMEOUT_S + 10)
    if completed.returncode != 0:
        tail = _tail(log_file)
        raise ForkError(
            f"the fork server on port {port} did not start: "
            f"{tail or completed.describe()}",
            hint="see the server log above; the fork folder is removed",
        )
    return _postmaster_pid(data_dir)


def stop_server(data_dir: Path, *, bindir: Path) -> None:
    """Stop the server on ``data_dir`` with ``-m immediate``; a stopped one is fine."""
    if not (data_dir / "postmaster.pid").exists():
        return
    args = [str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w"]
    args += ["-t", str(int(STOP_TIMEOUT_S)), "stop"]
    completed = _run(as_service_user(args), data_dir.parent, STOP_TIMEOUT_S + 10)
    if completed.returncode != 0 and (data_dir / "postmaster.pid").exists():
        raise ForkError(f"cannot stop the fork server: {completed.describe()}")


def remove_folder(folder: Path) -> None:
    """Delete a fork folder; only folders whose name starts with ``daw_fork_``."""
    if not folder.name.startswith("daw_fork_"):
        raise ForkError(f"refusing to delete {folder}: it is not a fork folder")
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():
        raise ForkError(f"cannot delete the fork folder {folder}")


def folder_bytes(folder: Path) -> int:
    """Return the apparent size in bytes of the regular files under ``folder``."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                total += os.lstat(path).st_size
    return total


def _run(args: list[str], cwd: Path, timeout_s: float):
    try:
        return run_tool(args, cwd=cwd, timeout_s=timeout_s)
    except ToolError as exc:
        raise ForkError(str(exc)) from exc


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def _postmaster_pid(data_dir: Path) -> int:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return 0


def create_cluster_fork(
    strategy: str,
    source: DatabaseUrl,
    run_id: str,
    state: Any,
    folder_for: Callable[[str], Path],
    bindir: Path,
    build: Callable[[Fork, Path], None],
) -> Fork:
    """Record a fork whose data folder is ``folder_for(name)/data``, build it, time it.

    The fork is recorded in ``state`` before ``build`` runs, so a crash leaves a
    state file that cleanup finds. A failed build removes the folder and the record.
    """
    name = fork_name(run_id)
    folder = folder_for(name)
    fork = Fork(
        strategy=strategy,
        run_id=run_id,
        name=name,
        url=source,
        source=source.redacted(),
        created_at=utc_now(),
        details={"folder": str(folder), "bindir": str(bindir), "port": 0},
    )
    state.record(fork)
    started = time.monotonic()
    try:
        build(fork, folder)
    except BaseException:
        remove_cluster_fork(fork)
        state.remove(name)
        raise
    fork.seconds = time.monotonic() - started
    fork.bytes_copied = folder_bytes(folder / "data")
    state.record(fork)
    return fork


def remove_cluster_fork(fork: Fork) -> None:
    """Stop the fork's server, if it runs, and delete its folder."""
    folder = Path(fork.details.get("folder", ""))
    if not folder.name:
        return
    bindir = Path(fork.details.get("bindir", ""))
    if (folder / "data").is_dir() and (bindir / "pg_ctl").is_file():
        stop_server(folder / "data", bindir=bindir)
    if folder.exists():
        remove_folder(folder)
    log.info("removed %s fork %s", fork.strategy, fork.name)
